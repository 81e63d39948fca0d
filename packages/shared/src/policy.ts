/**
 * Least-privilege S3 policies for each process, derived from the bucket layout (docs/design.md):
 * what `sync-agent policy` prints and docs/security.md explains. The Ceph RGW tier applies them to
 * real users and checks that each process works with exactly these permissions and no more.
 *
 * The agent of a workspace W (under prefix P) touches P W/* (plain objects), P .sync/W/* (commits,
 * trees, packs, blobs, the v1 manifest) and P .sync/.heads/W (the head), and lists those same
 * prefixes. The mount reads and lists everything under P and writes nothing.
 */
import { SyncError } from './errors.js';
import { CONTROL_DIR, isValidWorkspaceName } from './paths.js';

export const POLICY_SERVERS = ['aws', 'minio', 'rgw'] as const;
export type PolicyServer = (typeof POLICY_SERVERS)[number];

export interface PolicyOptions {
  bucket: string;
  prefix: string;
  server: PolicyServer;
  /**
   * Whom a bucket policy grants (`arn:aws:iam::<account>:user/<name>` on AWS, `arn:aws:iam:::user/<uid>`
   * on Ceph RGW). Without it the policy is an identity policy, attached to the user (AWS IAM, MinIO).
   */
  principal?: string | undefined;
}

export interface PolicyStatement {
  Sid: string;
  Effect: 'Allow';
  Principal?: { AWS: string[] };
  Action: string[];
  Resource: string[];
  Condition?: { StringLike: { 's3:prefix': string[] } };
}

export interface Policy {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

/** Read and write of the given workspaces only. `*` and `?` in a name match as in any S3 policy (`alice-*`). */
export function agentPolicy(workspaces: readonly string[], opts: PolicyOptions): Policy {
  checkOptions(opts);
  if (workspaces.length === 0) throw usage('an agent policy needs at least one workspace', 'e.g. sync-agent policy agent www api');
  for (const ws of workspaces) {
    if (!isValidWorkspaceName(ws) || ws.includes('$')) {
      throw usage(`"${ws}" is not a workspace name`, 'a workspace name is one path segment, not starting with "." and without "$"');
    }
  }
  const { prefix: p } = opts;
  const keys = workspaces.flatMap((ws) => [`${p}${ws}/*`, `${p}${CONTROL_DIR}/${ws}/*`, `${p}${CONTROL_DIR}/.heads/${ws}`]);
  const statements: Array<Omit<PolicyStatement, 'Principal'>> = [
    {
      Sid: 'WorkspaceSyncAgentObjects', Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
      Resource: keys.map((k) => objectArn(opts.bucket, k)),
    },
    {
      // The same keys as prefixes: the agent lists its workspace's objects and tells a missing
      // object from a denied one by listing the key itself (S3 answers 403 for a missing key otherwise).
      Sid: 'WorkspaceSyncAgentListing', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [bucketArn(opts.bucket)],
      Condition: { StringLike: { 's3:prefix': keys } },
    },
    {
      // gc aborts abandoned multipart uploads under .sync/W/. Servers cannot restrict this listing to a
      // prefix: it shows the keys (workspace and content hash) of uploads in flight in the whole bucket.
      // Leave it out and let a lifecycle rule abort incomplete uploads instead; gc then skips that sweep.
      Sid: 'WorkspaceSyncAgentUploads', Effect: 'Allow', Action: ['s3:ListBucketMultipartUploads'], Resource: [bucketArn(opts.bucket)],
    },
  ];
  if (opts.server === 'rgw') {
    // Ceph RGW 16 authorises DeleteObjects (batch deletes) against the bucket, then each key against
    // the grants above: without this the agent deletes one object per request.
    statements.push({ Sid: 'WorkspaceSyncAgentBatchDelete', Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: [bucketArn(opts.bucket)] });
  }
  return finish(statements, opts);
}

/** Read-only: every workspace under the prefix, nothing writable. */
export function mountPolicy(opts: PolicyOptions): Policy {
  checkOptions(opts);
  const listing: Omit<PolicyStatement, 'Principal'> = {
    Sid: 'WorkspaceSyncMountListing', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [bucketArn(opts.bucket)],
  };
  if (opts.prefix) listing.Condition = { StringLike: { 's3:prefix': [`${opts.prefix}*`] } };
  return finish([
    { Sid: 'WorkspaceSyncMountRead', Effect: 'Allow', Action: ['s3:GetObject'], Resource: [objectArn(opts.bucket, `${opts.prefix}*`)] },
    listing,
  ], opts);
}

function finish(statements: Array<Omit<PolicyStatement, 'Principal'>>, opts: PolicyOptions): Policy {
  const principal = opts.principal;
  return {
    Version: '2012-10-17',
    Statement: statements.map(({ Sid, Effect, ...grant }) => (principal ? { Sid, Effect, Principal: { AWS: [principal] }, ...grant } : { Sid, Effect, ...grant })),
  };
}

function checkOptions(opts: PolicyOptions): void {
  if (!(POLICY_SERVERS as readonly string[]).includes(opts.server)) {
    throw usage(`unknown server "${opts.server}" for a policy`, `one of ${POLICY_SERVERS.join(', ')}`);
  }
  if (opts.principal !== undefined && !/^arn:aws:iam::\d*:(user|role)\/\S+$/.test(opts.principal)) {
    throw usage(`"${opts.principal}" is not a user or role ARN`, 'e.g. arn:aws:iam::123456789012:user/alice (AWS) or arn:aws:iam:::user/alice (Ceph RGW)');
  }
  if (opts.server === 'rgw' && opts.principal === undefined) {
    throw usage('a Ceph RGW policy is a bucket policy: it needs --principal', 'e.g. --principal arn:aws:iam:::user/alice (the uid given to radosgw-admin user create)');
  }
  if (opts.server === 'minio' && opts.principal !== undefined) {
    throw usage('a MinIO policy is attached to a user (mc admin policy attach): it takes no --principal', 'drop --principal');
  }
}

function usage(message: string, hint: string): SyncError {
  return new SyncError('USAGE', message, { hint });
}

function bucketArn(bucket: string): string {
  return `arn:aws:s3:::${bucket}`;
}

function objectArn(bucket: string, key: string): string {
  return `arn:aws:s3:::${bucket}/${key}`;
}
