export { startEmbeddedS3, type EmbeddedS3, type StartOptions } from './spawn.js';
export { serveS3, EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY, type ServeOptions } from './server.js';
export { withFaults, unreachable, type FaultyStore, type FaultPlan, type Op } from './faults.js';
export { startCountingProxy, type CountingProxy, type WireRequest } from './proxy.js';
export { startRgw, type RgwOptions } from './rgw.js';
export { startTestS3 } from './backend.js';
export { writeCommitFixture, type CommitFixture, type CommitFixtureEntry, type CommitFixtureOptions } from './fixture.js';
