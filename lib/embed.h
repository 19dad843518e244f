/* embed.h -- files embedded into a binary at build time (cmake/embed.cmake). */
#ifndef LOYALTY_EMBED_H
#define LOYALTY_EMBED_H

#include <stddef.h>

/** One embedded file; tables of these end with an entry whose name is NULL. The bytes are
 *  followed by a NUL, so text files can be used as C strings. */
typedef struct embed_file {
    const char *name;
    const unsigned char *data;
    size_t len;
} embed_file_t;

#endif
