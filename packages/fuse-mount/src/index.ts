export { main } from './cli.js';
export { startMount, type RunningMount } from './daemon.js';
export { MountCore, type CoreOptions, type Stat, type DirListing, type StatFs } from './core.js';
export { createFuseHandlers, type FuseHandlers } from './fuse-ops.js';
