# Build helpers shared by every folder: protobuf-c generation, embedding files into C arrays,
# and the one way a service executable is assembled.

set(LOYALTY_GEN_DIR ${CMAKE_BINARY_DIR}/gen)

# loyalty_protoc_c(<target> <proto files...>): generate .pb-c.c/.h with protoc-c into
# ${LOYALTY_GEN_DIR} (paths relative to proto/) and build them as a static library.
function(loyalty_protoc_c target)
  set(srcs)
  foreach(p ${ARGN})
    file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR}/proto ${p})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    list(APPEND srcs ${LOYALTY_GEN_DIR}/${base}.pb-c.c)
    list(APPEND hdrs ${LOYALTY_GEN_DIR}/${base}.pb-c.h)
  endforeach()
  add_custom_command(
    OUTPUT ${srcs} ${hdrs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${LOYALTY_GEN_DIR}
    COMMAND ${PROTOC_C} -I${CMAKE_SOURCE_DIR}/proto --c_out=${LOYALTY_GEN_DIR} ${ARGN}
    DEPENDS ${ARGN}
    COMMENT "protoc-c: generating C messages"
    VERBATIM)
  add_library(${target} STATIC ${srcs})
  target_include_directories(${target} PUBLIC ${LOYALTY_GEN_DIR})
  target_link_libraries(${target} PUBLIC PkgConfig::PROTOBUFC)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# loyalty_descriptor_set(<out.desc> <root> <proto files...>): the serialized FileDescriptorSet
# of the files and everything they import, with names relative to <root> (as the files import
# each other), for grpc.reflection.
function(loyalty_descriptor_set out root)
  get_filename_component(dir ${out} DIRECTORY)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${PROTOC} -I${root} --include_imports --descriptor_set_out=${out} ${ARGN}
    DEPENDS ${ARGN}
    COMMENT "protoc: descriptor set for reflection"
    VERBATIM)
endfunction()

# loyalty_embed(<out.c> <symbol> <files...>): a C file defining
#   const embed_file_t <symbol>[] = {{"name", bytes, len}, ..., {0}};
# so that migrations travel inside the binary (containers need no SQL files on disk).
function(loyalty_embed out symbol)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DSYMBOL=${symbol} "-DFILES=${ARGN}"
            -P ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${ARGN} ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    COMMENT "embedding ${symbol}"
    VERBATIM)
endfunction()

# loyalty_service(<name> RULES <pure domain files...> SOURCES <handlers, store, main...>)
# Builds <name>_rules (pure functions, linked by unit tests) and the executable <name> with the
# folder's migrations/*.sql embedded as <symbol>_migrations (symbol = name with '-' -> '_').
function(loyalty_service name)
  cmake_parse_arguments(S "" "" "RULES;SOURCES" ${ARGN})
  string(REPLACE "-" "_" sym ${name})
  file(GLOB migrations CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/migrations/*.sql)
  list(SORT migrations)
  set(mig_c ${CMAKE_CURRENT_BINARY_DIR}/${sym}_migrations.c)
  loyalty_embed(${mig_c} ${sym}_migrations ${migrations})
  if(S_RULES)
    add_library(${name}_rules STATIC ${S_RULES})
    target_compile_options(${name}_rules PRIVATE ${LOYALTY_WARNINGS})
    target_include_directories(${name}_rules PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(${name}_rules PUBLIC loyalty_runtime)
    set_property(GLOBAL APPEND PROPERTY LOYALTY_RULES_LIBS ${name}_rules)
  endif()
  add_executable(${name} ${S_SOURCES} ${mig_c})
  target_compile_options(${name} PRIVATE ${LOYALTY_WARNINGS})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE loyalty_runtime)
  if(S_RULES)
    target_link_libraries(${name} PRIVATE ${name}_rules)
  endif()
  set_property(GLOBAL APPEND PROPERTY LOYALTY_SERVICES ${name})
endfunction()
