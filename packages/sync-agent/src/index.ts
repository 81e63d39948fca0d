export { main } from './cli.js';
export { pushWorkspace, type PushOptions, type PushReport } from './push.js';
export { planSync, checkDeleteGuard, type Plan, type HashedEntry } from './planner.js';
export { scanWorkspace, entryFor, type LocalEntry, type ScanResult, type Skipped } from './scan.js';
export { listFiles } from './files.js';
export { listWorkspaces } from './workspaces.js';
export { startWatch, type WatchOptions, type WatchHandle, type WatchSummary } from './watch-root.js';
export type { WorkspaceSummary, WorkspaceStatus } from './watch-workspace.js';
