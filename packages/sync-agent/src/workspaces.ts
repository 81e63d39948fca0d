/** Which directories under the root are workspaces: every directory whose name does not start with ".". */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { isValidWorkspaceName, SyncError } from '@workspace-sync/shared';

export async function listWorkspaces(root: string): Promise<string[]> {
  let names;
  try {
    names = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new SyncError('WORKSPACE_MISSING', `workspaces root ${root} cannot be read (${(err as NodeJS.ErrnoException).code})`, {
      hint: 'set --root or WORKSPACES_DIR to the directory that holds your workspaces', cause: err,
    });
  }
  const out: string[] = [];
  for (const d of names) {
    if (!isValidWorkspaceName(d.name)) continue;
    // A symlinked workspace directory counts; symlinks inside workspaces are never followed.
    if (d.isDirectory() || (d.isSymbolicLink() && (await stat(path.join(root, d.name)).catch(() => undefined))?.isDirectory())) {
      out.push(d.name);
    }
  }
  return out.sort();
}

/** Validates names given on the command line. */
export function checkWorkspaceName(name: string, root: string): void {
  if (!isValidWorkspaceName(name)) {
    throw new SyncError('WORKSPACE_UNKNOWN', `"${name}" is not a workspace name`, {
      hint: `a workspace is a directory directly under ${root} whose name does not start with "."`,
    });
  }
}
