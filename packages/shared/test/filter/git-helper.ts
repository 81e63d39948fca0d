/** Running the real git in tests: no user or system config, a fixed identity, C locale. */
import { execFileSync } from 'node:child_process';

export function gitRunner(home: string) {
  const env = {
    ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: home, LC_ALL: 'C',
    GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
    // Submodules from local paths (git refuses the file transport for them by default since 2.38.1).
    GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.file.allow', GIT_CONFIG_VALUE_0: 'always',
  };
  return (cwd: string, args: string[], input?: string): Buffer =>
    execFileSync('git', args, { cwd, env, input, maxBuffer: 256 << 20, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** `git ls-files --stage -t` as records (sparse directories included, as the index stores them). */
export function lsFilesStage(git: ReturnType<typeof gitRunner>, cwd: string) {
  return git(cwd, ['ls-files', '--sparse', '--stage', '-t', '-z']).toString('utf8').split('\0').filter(Boolean).map((line) => {
    const m = /^(\S) (\d+) [0-9a-f]+ (\d)\t([\s\S]*)$/.exec(line);
    if (!m) throw new Error(`unexpected ls-files line ${JSON.stringify(line)}`);
    return { path: m[4]!, mode: parseInt(m[2]!, 8), stage: Number(m[3]), skipWorktree: m[1] === 'S' };
  });
}
