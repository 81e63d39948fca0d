export { startEmbeddedS3, type EmbeddedS3, type StartOptions } from './spawn.js';
export { serveS3, EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY, type ServeOptions } from './server.js';
export {
  withFaults, unreachable, SimulatedCrash,
  type FaultyStore, type FaultPlan, type Op, type Call, type CallMatch, type Matcher, type CrashPoint, type HangOptions, type Fault, type CrashOutcome,
} from './faults.js';
export { createMemoryStore, type MemoryStore, type MemoryStoreOptions, type StoredObject } from './memory-store.js';
export { realClock, createManualClock, type Clock, type ManualClock } from './clock.js';
export {
  startFaultProxy, startCountingProxy, type FaultProxy, type CountingProxy, type ProxyFault, type RequestMatch, type WireRequest,
} from './fault-proxy.js';
export { startRgw, createRgwUser, setBucketPolicy, type RgwOptions, type RgwGateway, type RgwUser } from './rgw.js';
export { createTestPki, startTlsProxy, type TestPki, type TlsProxy } from './tls.js';
export { startTestS3 } from './backend.js';
export { readCommitted, readTree, readCommittedFile, type Committed } from './committed.js';
export { writeCommitFixture, type CommitFixture, type CommitFixtureEntry, type CommitFixtureOptions } from './fixture.js';
export { tempDir, removeDir, type TempDir } from './temp-dir.js';
export { waitFor } from './wait.js';
export { runProcess, type ProcessResult, type RunProcessOptions } from './run-process.js';
