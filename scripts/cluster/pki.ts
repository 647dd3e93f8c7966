// A throwaway certificate authority for the test clusters (openssl, EC P-256 keys, two-day certificates).
// Used by the loopback control plane (control-plane.ts) and the real node (scripts/node/node.ts).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertificateRequest {
  /** File stem: `<name>.crt` and `<name>.key` in the PKI directory. */
  name: string;
  /** openssl subject, e.g. `/O=system:nodes/CN=system:node:rtgw-node`. */
  subject: string;
  /** subjectAltName entries, e.g. `IP:10.245.0.1`, `DNS:kubernetes.default.svc`. */
  altNames?: string[];
  usage: 'server' | 'client' | 'both';
}

export interface CertificatePair {
  cert: string;
  key: string;
}

export class Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;

  constructor(dir: string, caName = 'test-cluster-ca') {
    this.dir = dir;
    this.caKey = join(dir, 'ca.key');
    this.caCert = join(dir, 'ca.crt');
    this.ecKey(this.caKey);
    this.openssl('req', '-x509', '-new', '-key', this.caKey, '-days', '2', '-subj', `/CN=${caName}`, '-out', this.caCert);
  }

  sign(request: CertificateRequest): CertificatePair {
    const file = (suffix: string) => join(this.dir, `${request.name}.${suffix}`);
    this.ecKey(file('key'));
    this.openssl('req', '-new', '-key', file('key'), '-subj', request.subject, '-out', file('csr'));
    const usage = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[request.usage];
    const lines = [`extendedKeyUsage=${usage}`];
    if (request.altNames?.length) lines.push(`subjectAltName=${request.altNames.join(',')}`);
    writeFileSync(file('ext'), `${lines.join('\n')}\n`);
    this.openssl('x509', '-req', '-in', file('csr'), '-CA', this.caCert, '-CAkey', this.caKey, '-CAcreateserial',
      '-days', '2', '-extfile', file('ext'), '-out', file('crt'));
    return { cert: file('crt'), key: file('key') };
  }

  /** The service-account token signer only accepts RSA and ECDSA keys; RSA is what every guide uses. */
  serviceAccountKeys(): { privateKey: string; publicKey: string } {
    const privateKey = join(this.dir, 'sa.key');
    const publicKey = join(this.dir, 'sa.pub');
    this.openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', privateKey);
    this.openssl('pkey', '-in', privateKey, '-pubout', '-out', publicKey);
    return { privateKey, publicKey };
  }

  /** A kubeconfig with the client certificate embedded, so it stays valid when copied elsewhere. */
  kubeconfig(file: string, server: string, client: CertificatePair, user = 'admin'): string {
    const b64 = (path: string) => readFileSync(path).toString('base64');
    writeFileSync(file, `apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(this.caCert)}
users:
- name: ${user}
  user:
    client-certificate-data: ${b64(client.cert)}
    client-key-data: ${b64(client.key)}
contexts:
- name: ${user}@cluster
  context:
    cluster: cluster
    user: ${user}
current-context: ${user}@cluster
`);
    return file;
  }

  private ecKey(file: string): void {
    this.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file);
  }

  private openssl(...args: string[]): void {
    // Synchronous on purpose: a handful of fast key operations before anything else can start.
    const result = spawnSync('openssl', args, { cwd: this.dir, encoding: 'utf8' });
    if (result.error || result.status !== 0) {
      const reason = result.error?.message ?? result.stderr.trim();
      throw new Error(`openssl ${args[0]} failed: ${reason}. Is openssl installed (apt-get install openssl)?`);
    }
  }
}
