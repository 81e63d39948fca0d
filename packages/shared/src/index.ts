export {
  SyncError, ErrorCodes, ExitCodes, ERROR_PROPERTIES, exitCodeFor, errorProperties, isOutage, isOutageCode, formatError, isSyncError, redact,
  type ErrorCode, type ErrorProperties,
} from './errors.js';
export { createLogger, type Logger, type LoggerOptions } from './log.js';
export { realClock, type Clock } from './clock.js';
export { parseSize, parseDuration, formatBytes } from './units.js';
export {
  OPTIONS, CONFIG_FILE_NAME, CONFIG_ENV, optionsFor, resolveConfig, normalizePrefix,
  type OptionDef, type OptionGroup, type PatternSource, type Shorthand, type Scope, type AgentConfig, type MountConfig, type CommonConfig, type ResolveInput,
} from './config.js';
export {
  createS3Client, createObjectStore, translateS3Error, refuseLarger, stripEtag, httpStatus, encryptionLabel, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS,
  type ObjectStore, type S3Settings, type GetOptions, type GetResult, type ObjectInfo, type PutOptions, type CopyOptions,
  type ListEntry, type UploadInfo, type Encryption,
} from './s3.js';
export { s3SettingsFor, readCaBundle, readCustomerKey, type EncryptionConfig } from './s3-settings.js';
export {
  MANIFEST_FORMAT, MANIFEST_VERSION, encodeManifest, decodeManifest, compareUtf8,
  type Manifest, type ManifestEntry, type FileEntry, type SymlinkEntry, type PackInfo,
} from './manifest.js';
export {
  CONTROL_DIR, isSafeRelativePath, isValidWorkspaceName, workspacePrefix, objectKey, manifestKey, packKey, packsPrefix,
  workspaceOfManifestKey, headsPrefix, headKey, controlPrefix, commitsPrefix, commitKey, treePacksPrefix, treePackKey,
  blobsPrefix, blobKey, workspaceOfKey, keyOutline,
} from './paths.js';
export {
  COMMIT_FORMAT, FORMAT_VERSION, CHUNK_SIZE, MAX_COMMIT_BYTES, MAX_TREE_PACK_BYTES, MAX_CHANGE_PATHS, commitStem, isCommitStem, isPackName, isValidName,
  SPLIT_ABOVE, encodeTree, splitEntries, encodeSplitTree, decodeTreeObject, decodeSplit, encodeCommit, decodeCommit,
  type TreeObject, type Commit, type CommitChanges, type TreeRef, type TreeEntry, type FileTreeEntry, type DirTreeEntry, type SymlinkTreeEntry,
} from './format.js';
export {
  DEFAULT_EXCLUDES, createFilter, trackedChanges, dockerignoreMatcher, type Filter, type FilterOptions, type Rule, type Verdict,
} from './filter/index.js';
export { sha256Hex, readFileStable, hashFileStable, readFullySync, sameStat, type StableRead, type StableHash, type StatVersion } from './hash.js';
export {
  startHealthServer, createRegistry, Counter, Gauge, Histogram, Registry,
  type Health, type HealthStatus, type HealthServer, type Route,
} from './health.js';
export { addConfigOptions, configFlags } from './cli-options.js';
export {
  createTreeReader, walkTree, diffTrees,
  type TreeReader, type TreeReaderOptions, type FlatEntry, type FlatDir, type TreeDiff,
} from './tree-reader.js';
export {
  agentPolicy, mountPolicy, POLICY_SERVERS, type Policy, type PolicyOptions, type PolicyServer, type PolicyStatement,
} from './policy.js';
export { isProcessAlive } from './process.js';
