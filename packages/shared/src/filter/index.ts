/**
 * The filter: which paths of a workspace are synced, exactly as git decides (`git ls-files --cached
 * --others --exclude-standard`: the index's tracked files, every .gitignore layer, info/exclude,
 * defaults), plus a workspace's .dockerignore. Reads the git index itself (versions 2 to 4, split and sparse indexes,
 * worktrees, submodules, sparse checkouts); imports nothing else of shared but its error type, so it
 * can be read, tested and reused alone.
 */
export { DEFAULT_EXCLUDES, createFilter, trackedChanges, type Filter, type FilterOptions, type Rule, type Verdict } from './filter.js';
export { dockerignoreMatcher } from './dockerignore.js';
