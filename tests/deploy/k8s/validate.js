// validate.js -- offline validation of rendered Kubernetes manifests (kubectl kustomize output):
// every object against the Kubernetes schemas (kubernetes-models) and the prometheus-operator's
// CRD schemas (@kubernetes-models/prometheus-operator), then the suite's own rules for each
// service's Deployment (with its probes: gRPC, or HTTP on the metrics port when TLS is on),
// Service, HPA and PDB, the ConfigMap and the Secret, and, where the monitoring component is
// included, its ServiceMonitor, PrometheusRule and dashboard. Exits 1 on any error.
// `--self-test` breaks a copy of a file in known ways (the first file a break applies to) and
// requires each break to be caught, so that the checks themselves cannot silently pass everything.
//
// Usage: node validate.js [--self-test] RENDERED.yaml...
'use strict';

const fs = require('fs');
const YAML = require('yaml');

const SERVICES = {
  gateway: 50050, 'member-svc': 50051, 'points-svc': 50052, 'wallet-svc': 50053,
  'referral-svc': 50054, 'promo-svc': 50055,
};
const SECRET_KEYS = ['LOYALTY_PG_DSN', 'LOYALTY_REDIS_URL', 'LOYALTY_AUTH_TOKEN'];
// Each service's own database role (README "Database roles"): the Secret key of its DSN. The
// Secret's LOYALTY_PG_DSN is the owner's, for the migrate step only.
const DSN_KEYS = Object.fromEntries(Object.keys(SERVICES).map(
  (s) => [s, `${s.toUpperCase().replace(/-/g, '_')}_PG_DSN`]));

// The package with the models of a CRD group's schemas; anything else is kubernetes-models.
const CRD_PACKAGES = { 'monitoring.coreos.com': '@kubernetes-models/prometheus-operator' };
// The alerts the monitoring component must carry (docs/operations.md#alerts has their runbooks).
const ALERTS = [
  'LoyaltyGrpcErrorRatioHigh', 'LoyaltyGrpcServerErrors', 'LoyaltyGrpcLatencyHigh',
  'LoyaltySagasNeedAttention', 'LoyaltySagaOlderThanCheckoutTTL', 'LoyaltyOutboxLagging',
  'LoyaltyPostgresUnreachable', 'LoyaltyNotReady', 'LoyaltyTargetDown', 'LoyaltyServiceDown',
];
const SEVERITIES = ['critical', 'warning'];

// <package>/<group>/<version> for an apiVersion ("v1" is the core group).
function modelClass(apiVersion, kind) {
  const path = apiVersion.includes('/') ? apiVersion : `v1`;
  const pkg = CRD_PACKAGES[path.split('/')[0]] || 'kubernetes-models';
  let mod;
  try {
    mod = require(`${pkg}/${path}`);
  } catch (e) {
    return null;
  }
  return mod[kind] || null;
}

function schemaErrors(doc) {
  const Cls = modelClass(doc.apiVersion || '', doc.kind || '');
  if (!Cls) {
    return [`unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`];
  }
  try {
    new Cls(doc).validate();
    return [];
  } catch (e) {
    return [String(e.message || e)];
  }
}

function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

function checkContainerSecurity(where, sc, errors) {
  if (!sc || sc.allowPrivilegeEscalation !== false) {
    errors.push(`${where}: allowPrivilegeEscalation must be false`);
  }
  if (!sc || sc.readOnlyRootFilesystem !== true) {
    errors.push(`${where}: readOnlyRootFilesystem must be true`);
  }
  if (!sc || !sc.capabilities || !(sc.capabilities.drop || []).includes('ALL')) {
    errors.push(`${where}: capabilities must drop ALL`);
  }
}

function checkResources(where, r, errors) {
  for (const kind of ['requests', 'limits']) {
    for (const res of ['cpu', 'memory']) {
      if (!r || !r[kind] || r[kind][res] === undefined) {
        errors.push(`${where}: resources.${kind}.${res} missing`);
      }
    }
  }
}

function envFromNames(c) {
  const out = { configMaps: [], secrets: [] };
  for (const e of c.envFrom || []) {
    if (e.configMapRef) out.configMaps.push(e.configMapRef.name);
    if (e.secretRef) out.secrets.push(e.secretRef.name);
  }
  return out;
}

function checkDeployment(d, docs, errors) {
  const name = d.metadata.name;
  const port = SERVICES[name];
  const where = `Deployment ${name}`;
  const spec = d.spec || {};
  const pod = (spec.template || {}).spec || {};
  const podLabels = ((spec.template || {}).metadata || {}).labels || {};
  if (!(spec.replicas >= 2)) errors.push(`${where}: replicas must be at least 2`);
  const psc = pod.securityContext || {};
  if (psc.runAsNonRoot !== true || !(psc.runAsUser > 0)) {
    errors.push(`${where}: pod must run as a non-root user (runAsNonRoot, runAsUser > 0)`);
  }
  const main = (pod.containers || []).find((c) => c.name === name);
  if (!main) {
    errors.push(`${where}: no container named ${name}`);
    return;
  }
  const tag = (main.image || '').split(':')[1];
  if (!tag || tag === 'latest') errors.push(`${where}: image needs a tag other than latest`);
  const grpcPort = (main.ports || []).find((p) => p.name === 'grpc');
  if (!grpcPort || grpcPort.containerPort !== port) {
    errors.push(`${where}: container port "grpc" must be ${port}`);
  }
  const listen = (main.env || []).find((e) => e.name === 'LISTEN_ADDR');
  if (!listen || listen.value !== `0.0.0.0:${port}`) {
    errors.push(`${where}: LISTEN_ADDR must be 0.0.0.0:${port}`);
  }
  // The side port: Prometheus metrics, and the HTTP probes /livez and /readyz.
  const metricsPort = port + 1000;
  const mPort = (main.ports || []).find((p) => p.name === 'metrics');
  if (!mPort || mPort.containerPort !== metricsPort) {
    errors.push(`${where}: container port "metrics" must be ${metricsPort}`);
  }
  const metricsAddr = (main.env || []).find((e) => e.name === 'METRICS_ADDR');
  if (!metricsAddr || metricsAddr.value !== `0.0.0.0:${metricsPort}`) {
    errors.push(`${where}: METRICS_ADDR must be 0.0.0.0:${metricsPort}`);
  }
  checkResources(`${where} container`, main.resources, errors);
  checkContainerSecurity(`${where} container`, main.securityContext, errors);

  // Shutdown: preStop delay + drain + grace must fit in the termination grace period.
  const pre = ((main.lifecycle || {}).preStop || {});
  let preStopS = 0;
  if (pre.sleep) preStopS = pre.sleep.seconds;
  else if (pre.exec && /sleep$/.test(pre.exec.command[0])) preStopS = Number(pre.exec.command[1]);
  if (!(preStopS > 0)) errors.push(`${where}: needs a preStop delay`);
  const refs = envFromNames(main);
  const cms = docs.filter((x) => x.kind === 'ConfigMap' && refs.configMaps.includes(x.metadata.name));
  const secrets = docs.filter((x) => x.kind === 'Secret' && refs.secrets.includes(x.metadata.name));
  if (cms.length !== refs.configMaps.length || cms.length === 0) {
    errors.push(`${where}: envFrom must name ConfigMaps that exist (${refs.configMaps})`);
  }
  if (secrets.length !== refs.secrets.length || secrets.length === 0) {
    errors.push(`${where}: envFrom must name Secrets that exist (${refs.secrets})`);
  }
  const conf = Object.assign({}, ...cms.map((c) => c.data || {}));
  checkProbes(where, main, pod, conf, port, errors);
  checkDatabaseRole(where, main, secrets, DSN_KEYS[name], errors);
  checkCredentials(where, main, pod, conf, errors);
  const drainMs = Number(conf.SHUTDOWN_DRAIN_MS || 0);
  const graceMs = Number(conf.SHUTDOWN_GRACE_MS === undefined ? 10000 : conf.SHUTDOWN_GRACE_MS);
  const needed = preStopS + (drainMs + graceMs) / 1000 + 1;
  const tgps = pod.terminationGracePeriodSeconds === undefined ? 30
    : pod.terminationGracePeriodSeconds;
  if (tgps < needed) {
    errors.push(`${where}: terminationGracePeriodSeconds ${tgps} < preStop ${preStopS} s + ` +
      `drain ${drainMs} ms + grace ${graceMs} ms + 1 s`);
  }

  // Migrations run before the service starts: an init container of the same image.
  const migrate = (pod.initContainers || []).find((c) => (c.args || []).includes('--migrate'));
  if (!migrate || migrate.image !== main.image) {
    errors.push(`${where}: needs an init container running the same image with --migrate`);
  } else {
    checkResources(`${where} init container`, migrate.resources, errors);
    checkContainerSecurity(`${where} init container`, migrate.securityContext, errors);
  }

  const svc = docs.find((x) => x.kind === 'Service' && x.metadata.name === name);
  if (!svc || !matches(svc.spec.selector, podLabels) ||
      !(svc.spec.ports || []).some((p) => p.port === port &&
                                           (p.targetPort === 'grpc' || p.targetPort === port))) {
    errors.push(`${where}: needs a Service ${name} selecting its pods on port ${port}`);
  }
  if (svc && !(svc.spec.ports || []).some((p) => p.name === 'metrics' && p.port === metricsPort &&
      (p.targetPort === 'metrics' || p.targetPort === metricsPort))) {
    errors.push(`${where}: its Service needs a port "metrics" ${metricsPort} (scraped there)`);
  }
  const hpa = docs.find((x) => x.kind === 'HorizontalPodAutoscaler' &&
    x.spec.scaleTargetRef.kind === 'Deployment' && x.spec.scaleTargetRef.name === name);
  if (!hpa || !(hpa.spec.minReplicas >= 2) || !(hpa.spec.maxReplicas >= hpa.spec.minReplicas)) {
    errors.push(`${where}: needs a HorizontalPodAutoscaler with minReplicas >= 2`);
  }
  const pdb = docs.find((x) => x.kind === 'PodDisruptionBudget' &&
    matches((x.spec.selector || {}).matchLabels, podLabels));
  if (!pdb) errors.push(`${where}: needs a PodDisruptionBudget selecting its pods`);
}

// The service connects as its own role: LOYALTY_PG_DSN from its key of the Secret (which must
// have it), and it leaves the migrations to the init container (which connects as the owner).
function checkDatabaseRole(where, c, secrets, key, errors) {
  const e = (c.env || []).find((x) => x.name === 'LOYALTY_PG_DSN');
  const ref = e && e.valueFrom && e.valueFrom.secretKeyRef;
  if (!ref || ref.key !== key || !secrets.some((s) => s.metadata.name === ref.name)) {
    errors.push(`${where}: LOYALTY_PG_DSN must come from key ${key} of its Secret (its own role)`);
  } else if (!secrets.some((s) => Object.assign({}, s.data, s.stringData)[key] !== undefined)) {
    errors.push(`${where}: the Secret has no ${key}`);
  }
  const m = (c.env || []).find((x) => x.name === 'DB_MIGRATE_ON_START');
  if (!m || m.value !== '0') {
    errors.push(`${where}: DB_MIGRATE_ON_START must be "0" (its role may not migrate)`);
  }
}

// LOYALTY_CREDENTIALS_FILE, when set, names a file of a mounted Secret volume (not a subPath
// mount, which a change of the Secret would never reach).
function checkCredentials(where, c, pod, conf, errors) {
  const file = envValue(c, conf, 'LOYALTY_CREDENTIALS_FILE');
  if (!file) return;
  const mount = (c.volumeMounts || []).find((m) =>
    file.startsWith(m.mountPath.replace(/\/?$/, '/')));
  const vol = mount && (pod.volumes || []).find((v) => v.name === mount.name);
  if (!vol || !vol.secret || mount.subPath) {
    errors.push(`${where}: LOYALTY_CREDENTIALS_FILE must name a file of a mounted Secret`);
  }
}

// The value a container sees for an environment variable: its own env, else its ConfigMaps'.
function envValue(c, conf, name) {
  const e = (c.env || []).find((x) => x.name === name);
  if (e) return e.value || '';
  return conf[name] || '';
}

// Without TLS: the built-in gRPC probes on the service's port ("" for readiness, "liveness" for
// liveness and startup). With TLS (LOYALTY_TLS_CERT set), which those probes cannot speak: HTTP
// GET /readyz and /livez on the metrics port, and the certificate must come from a mounted Secret.
function checkProbes(where, c, pod, conf, port, errors) {
  const metricsPort = port + 1000;
  const certPath = envValue(c, conf, 'LOYALTY_TLS_CERT');
  const probes = { readinessProbe: ['', '/readyz'], livenessProbe: ['liveness', '/livez'],
    startupProbe: ['liveness', '/livez'] };
  for (const [field, [service, httpPath]] of Object.entries(probes)) {
    const p = c[field];
    if (!p) {
      if (field !== 'startupProbe') errors.push(`${where}: needs a ${field}`);
      continue;
    }
    if (certPath) {
      const h = p.httpGet;
      if (!h || h.path !== httpPath || !(h.port === 'metrics' || h.port === metricsPort) ||
          (h.scheme !== undefined && h.scheme !== 'HTTP')) {
        errors.push(`${where}: TLS is on, so ${field} must be HTTP GET ${httpPath} on the ` +
          `metrics port (gRPC probes cannot speak TLS)`);
      }
    } else if (!p.grpc || p.grpc.port !== port || (p.grpc.service || '') !== service) {
      errors.push(`${where}: ${field} must be grpc on ${port}, service "${service}"`);
    }
  }
  // Serving TLS means the others serve it too (one configuration): the CA to call them with
  // must be there as well, and the files must come from a mounted Secret.
  if (certPath) {
    for (const name of ['LOYALTY_TLS_CERT', 'LOYALTY_TLS_KEY', 'LOYALTY_TLS_CA']) {
      const file = envValue(c, conf, name);
      const mount = file && (c.volumeMounts || []).find((m) =>
        file.startsWith(m.mountPath.replace(/\/?$/, '/')));
      const vol = mount && (pod.volumes || []).find((v) => v.name === mount.name);
      if (!vol || !vol.secret) {
        errors.push(`${where}: TLS is on, so ${name} must name a file of a mounted Secret`);
      }
    }
  }
}

// The monitoring component: a ServiceMonitor scraping every service's metrics port, the alerts
// with severity, summary, description and runbook, and a dashboard that is JSON.
function checkMonitoring(docs, errors) {
  const sms = docs.filter((x) => x.kind === 'ServiceMonitor');
  const rules = docs.filter((x) => x.kind === 'PrometheusRule');
  const dashboards = docs.filter((x) => x.kind === 'ConfigMap' &&
    ((x.metadata || {}).labels || {}).grafana_dashboard !== undefined);
  if (sms.length + rules.length + dashboards.length === 0) return;
  if (sms.length === 0 || rules.length === 0 || dashboards.length === 0) {
    errors.push('monitoring: needs a ServiceMonitor, a PrometheusRule and a dashboard together');
  }
  for (const name of Object.keys(SERVICES)) {
    const svc = docs.find((x) => x.kind === 'Service' && x.metadata.name === name);
    if (!svc) continue;
    const scraped = sms.some((sm) => {
      const spec = sm.spec || {};
      const sameNs = (sm.metadata.namespace || '') === (svc.metadata.namespace || '') ||
        (spec.namespaceSelector || {}).any === true ||
        ((spec.namespaceSelector || {}).matchNames || []).includes(svc.metadata.namespace);
      return sameNs && matches((spec.selector || {}).matchLabels, svc.metadata.labels) &&
        !(spec.selector || {}).matchExpressions &&
        (spec.endpoints || []).some((e) => e.port === 'metrics' && (e.path || '/metrics') === '/metrics');
    });
    if (!scraped) errors.push(`monitoring: no ServiceMonitor scrapes port "metrics" of Service ${name}`);
  }
  const alerts = [];
  for (const pr of rules) {
    for (const g of (pr.spec || {}).groups || []) {
      for (const r of g.rules || []) {
        if (!r.alert) continue;
        alerts.push(r.alert);
        const w = `PrometheusRule ${pr.metadata.name}: ${r.alert}`;
        if (!SEVERITIES.includes((r.labels || {}).severity)) {
          errors.push(`${w}: label severity must be one of ${SEVERITIES}`);
        }
        const a = r.annotations || {};
        for (const k of ['summary', 'description']) {
          if (!a[k]) errors.push(`${w}: needs the annotation ${k}`);
        }
        if (a.runbook_url !== `docs/operations.md#${r.alert.toLowerCase()}`) {
          errors.push(`${w}: runbook_url must be docs/operations.md#${r.alert.toLowerCase()}`);
        }
      }
    }
  }
  for (const name of ALERTS) {
    if (rules.length && !alerts.includes(name)) errors.push(`monitoring: the alert ${name} is missing`);
  }
  for (const cm of dashboards) {
    const files = Object.keys(cm.data || {});
    if (files.length === 0) errors.push(`ConfigMap ${cm.metadata.name}: a dashboard ConfigMap without data`);
    for (const k of files) {
      try {
        const d = JSON.parse(cm.data[k]);
        if (!d.uid || !Array.isArray(d.panels)) throw new Error('no uid or panels');
      } catch (e) {
        errors.push(`ConfigMap ${cm.metadata.name}: ${k} is no Grafana dashboard (${e.message})`);
      }
    }
  }
}

function checkConfig(docs, errors) {
  for (const cm of docs.filter((x) => x.kind === 'ConfigMap')) {
    for (const k of SECRET_KEYS) {
      if ((cm.data || {})[k] !== undefined) errors.push(`ConfigMap ${cm.metadata.name}: ${k} is a secret`);
    }
  }
  const envSecrets = new Set(docs.filter((x) => x.kind === 'Deployment').flatMap((d) =>
    (d.spec.template.spec.containers || []).flatMap((c) => envFromNames(c).secrets)));
  for (const s of docs.filter((x) => x.kind === 'Secret' && envSecrets.has(x.metadata.name))) {
    const data = Object.assign({}, s.data || {}, s.stringData || {});
    for (const k of SECRET_KEYS) {
      if (data[k] === undefined) errors.push(`Secret ${s.metadata.name}: ${k} missing`);
    }
  }
}

function check(docs) {
  const errors = [];
  docs.forEach((d, i) => {
    for (const e of schemaErrors(d)) {
      errors.push(`${d.kind || '?'} ${(d.metadata || {}).name || `#${i}`}: ${e}`);
    }
  });
  const deployments = docs.filter((x) => x.kind === 'Deployment');
  for (const name of Object.keys(SERVICES)) {
    const d = deployments.find((x) => x.metadata && x.metadata.name === name);
    if (!d) errors.push(`no Deployment ${name}`);
    else checkDeployment(d, docs, errors);
  }
  checkConfig(docs, errors);
  checkMonitoring(docs, errors);
  return errors;
}

function load(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const obj = d.toJS();
    // kustomize folds long base64 values over several lines; the API server's base64 decoder
    // ignores the line breaks, the schema's "byte" format does not.
    if (obj && obj.kind === 'Secret' && obj.data) {
      for (const k of Object.keys(obj.data)) obj.data[k] = String(obj.data[k]).replace(/\s+/g, '');
    }
    return obj;
  }).filter((d) => d !== null);
}

// Each break must make check() report at least one error.
const BREAKS = {
  'schema: port as text': (docs) => { dep(docs).spec.template.spec.containers[0].ports[0].containerPort = 'grpc'; },
  'one replica': (docs) => { dep(docs).spec.replicas = 1; },
  'no readiness probe': (docs) => { delete dep(docs).spec.template.spec.containers[0].readinessProbe; },
  'http liveness': (docs) => {
    dep(docs).spec.template.spec.containers[0].livenessProbe = { httpGet: { path: '/', port: 80 } };
  },
  'root user': (docs) => { dep(docs).spec.template.spec.securityContext.runAsNonRoot = false; },
  'writable root': (docs) => {
    dep(docs).spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
  },
  'privilege escalation': (docs) => {
    delete dep(docs).spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation;
  },
  'no limits': (docs) => { delete dep(docs).spec.template.spec.containers[0].resources.limits; },
  'short grace': (docs) => { dep(docs).spec.template.spec.terminationGracePeriodSeconds = 10; },
  'no migration': (docs) => { dep(docs).spec.template.spec.initContainers = []; },
  'no PDB': (docs) => { docs.splice(docs.findIndex((x) => x.kind === 'PodDisruptionBudget'), 1); },
  'no HPA': (docs) => { docs.splice(docs.findIndex((x) => x.kind === 'HorizontalPodAutoscaler'), 1); },
  'secret in ConfigMap': (docs) => {
    docs.find((x) => x.kind === 'ConfigMap').data.LOYALTY_AUTH_TOKEN = 'x';
  },
  'service connects as the owner': (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.env = c.env.filter((e) => e.name !== 'LOYALTY_PG_DSN');
  },
  'service migrates itself': (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.env = c.env.filter((e) => e.name !== 'DB_MIGRATE_ON_START');
  },
  'credentials not mounted': (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.volumeMounts = c.volumeMounts.filter((m) => m.name !== 'credentials');
  },
  'latest image': (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.image = c.image.split(':')[0] + ':latest';
  },
  'missing service': (docs) => { docs.splice(docs.findIndex((x) => x.kind === 'Deployment'), 1); },
  'no metrics port': (docs) => { dep(docs).spec.template.spec.containers[0].ports.splice(1, 1); },
  'no METRICS_ADDR': (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.env = c.env.filter((e) => e.name !== 'METRICS_ADDR');
  },
  'Service without metrics port': (docs) => {
    const s = docs.find((x) => x.kind === 'Service');
    s.spec.ports = s.spec.ports.filter((p) => p.name !== 'metrics');
  },
  'TLS on, gRPC probes': (docs) => {
    docs.find((x) => x.kind === 'ConfigMap').data.LOYALTY_TLS_CERT = '/etc/loyalty/tls/tls.crt';
    const c = dep(docs).spec.template.spec.containers[0];
    c.volumeMounts = [{ name: 'tls', mountPath: '/etc/loyalty/tls' }];
    dep(docs).spec.template.spec.volumes = [{ name: 'tls', secret: { secretName: 'loyalty-tls' } }];
  },
  'TLS on, gRPC startup probe': [tlsOn, (docs) => {
    const c = dep(docs).spec.template.spec.containers[0];
    c.startupProbe = { grpc: { port: c.ports[0].containerPort, service: 'liveness' } };
  }],
  'TLS on, readiness on /livez': [tlsOn, (docs) => {
    dep(docs).spec.template.spec.containers[0].readinessProbe.httpGet.path = '/livez';
  }],
  'TLS on, no CA': [tlsOn, (docs) => {
    delete docs.find((x) => x.kind === 'ConfigMap' && x.data.LOYALTY_TLS_CA).data.LOYALTY_TLS_CA;
  }],
  'TLS on, certificate not mounted': [tlsOn, (docs) => {
    delete dep(docs).spec.template.spec.containers[0].volumeMounts;
  }],
  'ServiceMonitor on the grpc port': [monitoring, (docs) => {
    kind(docs, 'ServiceMonitor').spec.endpoints[0].port = 'grpc';
  }],
  'ServiceMonitor selecting nothing': [monitoring, (docs) => {
    kind(docs, 'ServiceMonitor').spec.selector.matchLabels['app.kubernetes.io/component'] = 'nothing';
  }],
  'schema: ServiceMonitor interval': [monitoring, (docs) => {
    kind(docs, 'ServiceMonitor').spec.endpoints[0].interval = '30 seconds';
  }],
  'schema: rule without expr': [monitoring, (docs) => {
    delete kind(docs, 'PrometheusRule').spec.groups[0].rules[0].expr;
  }],
  'alert without severity': [monitoring, (docs) => {
    delete kind(docs, 'PrometheusRule').spec.groups[0].rules[0].labels.severity;
  }],
  'alert without runbook': [monitoring, (docs) => {
    delete kind(docs, 'PrometheusRule').spec.groups[0].rules[0].annotations.runbook_url;
  }],
  'alert missing': [monitoring, (docs) => {
    const g = kind(docs, 'PrometheusRule').spec.groups;
    g[g.length - 1].rules.pop();
  }],
  'dashboard not JSON': [monitoring, (docs) => {
    const cm = docs.find((x) => x.kind === 'ConfigMap' && x.metadata.labels &&
      x.metadata.labels.grafana_dashboard);
    const k = Object.keys(cm.data)[0];
    cm.data[k] = cm.data[k].slice(0, -10);
  }],
};

function kind(docs, k) {
  return docs.find((x) => x.kind === k);
}

function tlsOn(docs) {
  return docs.some((x) => x.kind === 'ConfigMap' && (x.data || {}).LOYALTY_TLS_CERT);
}

function monitoring(docs) {
  return docs.some((x) => x.kind === 'ServiceMonitor');
}

function dep(docs) {
  return docs.find((x) => x.kind === 'Deployment');
}

function main() {
  const args = process.argv.slice(2);
  const selfTest = args[0] === '--self-test';
  const files = selfTest ? args.slice(1) : args;
  if (files.length === 0) {
    console.error('usage: node validate.js [--self-test] RENDERED.yaml...');
    process.exit(2);
  }
  let failed = false;
  for (const file of files) {
    const docs = load(file);
    const errors = check(docs);
    for (const e of errors) console.log(`${file}: ${e}`);
    if (errors.length) failed = true;
    else console.log(`${file}: ${docs.length} objects valid`);
  }
  if (selfTest) {
    for (const [name, b] of Object.entries(BREAKS)) {
      const [applies, breakIt] = Array.isArray(b) ? b : [() => true, b];
      const file = files.find((f) => applies(load(f)));
      if (file === undefined) {
        console.log(`self-test: no file to try the break "${name}" on`);
        failed = true;
        continue;
      }
      const docs = load(file);
      breakIt(docs);
      if (check(docs).length === 0) {
        console.log(`self-test: the break "${name}" was not caught (on ${file})`);
        failed = true;
      }
    }
    if (!failed) console.log(`self-test: all ${Object.keys(BREAKS).length} breaks caught`);
  }
  process.exit(failed ? 1 : 0);
}

main();
