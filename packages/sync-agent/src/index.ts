export { main } from './cli.js';
export { pushWorkspace, type PushOptions, type PushReport } from './push.js';
export { planSync, checkDeleteGuard, toManifestEntry, type Plan, type HashedEntry, type RemoteObject } from './planner.js';
export { scanWorkspace, entryFor, type LocalEntry, type ScanResult, type Skipped } from './scan.js';
export { listFiles } from './files.js';
export { listWorkspaces } from './workspaces.js';
