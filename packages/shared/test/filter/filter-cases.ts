/**
 * Hand-written filter cases, one per rule. Each is a tree under the workspaces root (the workspace
 * is `ws`), optional `--exclude` patterns, and the files a walk must keep. filter.test.ts checks the
 * filter against `expected`; filter-git.test.ts checks that git itself agrees with `expected`
 * (every case without a .dockerignore), so the expectations are git's, not ours.
 */
import type { TreeSpec } from './walk-helper.js';

export interface FilterCase {
  name: string;
  /** Paths relative to the workspaces root; the workspace is `ws`. */
  tree: TreeSpec;
  excludes?: string[];
  /** Workspace-relative files that are kept, sorted. */
  expected: string[];
}

export const WS = 'ws';

export const GIT_CASES: FilterCase[] = [
  {
    name: 'default excludes at any depth; dir-only defaults spare files of that name',
    tree: {
      'ws/a.js': '', 'ws/node_modules/x/index.js': '', 'ws/debug.log': '', 'ws/.env': '', 'ws/.env.local': '',
      'ws/dist/out.js': '', 'ws/build/o': '', 'ws/__pycache__/m.cpython.pyc': '', 'ws/vendor/v.go': '',
      'ws/m.pyc': '', 'ws/.DS_Store': '', 'ws/Thumbs.db': '', 'ws/src/.DS_Store': '', 'ws/src/build/x': '',
      'ws/src/app.ts': '', 'ws/src/node_modules/y': '', 'ws/lib/dist': 'a file named dist', 'ws/lib/build': '',
    },
    expected: ['a.js', 'lib/build', 'lib/dist', 'src/app.ts'],
  },
  {
    name: 'last matching line wins',
    tree: {
      'ws/.gitignore': '*.txt\n!important.txt\n!x.md\n*.md\n',
      'ws/a.txt': '', 'ws/important.txt': '', 'ws/x.md': '', 'ws/sub/important.txt': '',
    },
    expected: ['.gitignore', 'important.txt', 'sub/important.txt'],
  },
  {
    name: 'nested negation: *.txt at the root, !keep.txt deeper',
    tree: {
      'ws/.gitignore': '*.txt\n',
      'ws/keep.txt': '', 'ws/sub/.gitignore': '!keep.txt\n', 'ws/sub/keep.txt': '', 'ws/sub/other.txt': '',
      'ws/sub/deeper/keep.txt': '', 'ws/sub/deeper/no.txt': '', 'ws/other/keep.txt': '',
    },
    expected: ['.gitignore', 'sub/.gitignore', 'sub/deeper/keep.txt', 'sub/keep.txt'],
  },
  {
    name: 'deeper .gitignore wins over a shallower one',
    tree: {
      'ws/.gitignore': '!README.md\nsecret*\n',
      'ws/README.md': '', 'ws/secret-a': '',
      'ws/docs/.gitignore': '*.md\n!secret-ok\n', 'ws/docs/README.md': '', 'ws/docs/secret-ok': '', 'ws/docs/secret-no': '',
    },
    expected: ['.gitignore', 'README.md', 'docs/.gitignore', 'docs/secret-ok'],
  },
  {
    name: 'a file under an excluded directory cannot be re-included',
    tree: {
      'ws/.gitignore': 'logs/\n!logs/keep.txt\ncache/*\n!cache/keep.txt\n',
      'ws/logs/keep.txt': '', 'ws/logs/a.txt': '', 'ws/logs/.gitignore': '!*\n',
      'ws/cache/keep.txt': '', 'ws/cache/a.txt': '', 'ws/cache/sub/keep.txt': '',
    },
    expected: ['.gitignore', 'cache/keep.txt'],
  },
  {
    name: 'a leading or middle slash anchors to the .gitignore directory',
    tree: {
      'ws/.gitignore': '/top.txt\nmid/file.txt\nany.txt\n',
      'ws/top.txt': '', 'ws/sub/top.txt': '', 'ws/mid/file.txt': '', 'ws/sub/mid/file.txt': '',
      'ws/any.txt': '', 'ws/sub/any.txt': '',
      'ws/sub/.gitignore': '/local\n', 'ws/sub/local': '', 'ws/sub/x/local': '', 'ws/local': '',
    },
    expected: ['.gitignore', 'local', 'sub/.gitignore', 'sub/mid/file.txt', 'sub/top.txt', 'sub/x/local'],
  },
  {
    name: 'a/**/b matches zero or more directories',
    tree: {
      'ws/.gitignore': 'a/**/b\n',
      'ws/a/b': '', 'ws/a/x/b': '', 'ws/a/x/y/b': '', 'ws/xa/b': '', 'ws/a/bb': '', 'ws/c/a/b': '',
    },
    expected: ['.gitignore', 'a/bb', 'c/a/b', 'xa/b'],
  },
  {
    name: '**/x matches at any depth, x/** everything inside x',
    tree: {
      'ws/.gitignore': '**/x\ny/**\n',
      'ws/x': '', 'ws/d/x': '', 'ws/d/e/x': '', 'ws/d/xx': '',
      'ws/y/a': '', 'ws/y/b/c': '', 'ws/d/y/a': '', 'ws/y.txt': '',
    },
    expected: ['.gitignore', 'd/xx', 'd/y/a', 'y.txt'],
  },
  {
    name: 'foo/ matches directories only, not files or symlinks named foo',
    tree: {
      'ws/.gitignore': 'foo/\nlnk/\n',
      'ws/foo/a': '', 'ws/bar/foo': '', 'ws/bar/foo.d/x': '', 'ws/target/t': '', 'ws/lnk': { link: 'target' },
    },
    expected: ['.gitignore', 'bar/foo', 'bar/foo.d/x', 'lnk', 'target/t'],
  },
  {
    name: 'escapes: \\#, \\!, \\*, \\? and \\[',
    tree: {
      'ws/.gitignore': '\\#file\n#comment\n\\!bang\nstar\\*\nq\\?\n\\[x]\n',
      'ws/#file': '', 'ws/#comment': '', 'ws/!bang': '', 'ws/bang': '', 'ws/star*': '', 'ws/starx': '',
      'ws/q?': '', 'ws/qx': '', 'ws/[x]': '', 'ws/x': '',
    },
    expected: ['#comment', '.gitignore', 'bang', 'qx', 'starx', 'x'],
  },
  {
    name: 'trailing spaces are trimmed unless escaped; inner spaces count',
    tree: {
      'ws/.gitignore': 'trail   \nsp\\ \nx y\ntab\t\n',
      'ws/trail': '', 'ws/trail ': '', 'ws/sp ': '', 'ws/sp': '', 'ws/x y': '', 'ws/x': '', 'ws/tab\t': '', 'ws/tab': '',
    },
    expected: ['.gitignore', 'sp', 'tab', 'trail ', 'x'],
  },
  {
    name: 'matching is case sensitive',
    tree: { 'ws/.gitignore': 'Foo\n*.TXT\n', 'ws/Foo': '', 'ws/foo': '', 'ws/FOO': '', 'ws/a.txt': '', 'ws/b.TXT': '' },
    expected: ['.gitignore', 'FOO', 'a.txt', 'foo'],
  },
  {
    name: 'CRLF .gitignore and a UTF-8 BOM',
    tree: { 'ws/.gitignore': '\uFEFFa.txt\r\nb.txt\r\n\r\n!c.txt\r\n', 'ws/a.txt': '', 'ws/b.txt': '', 'ws/c.txt': '', 'ws/d.txt': '' },
    expected: ['.gitignore', 'c.txt', 'd.txt'],
  },
  {
    name: 'a workspace .gitignore overrides the defaults with ! (!.env.example)',
    tree: { 'ws/.gitignore': '!.env.example\n', 'ws/.env': '', 'ws/.env.example': '', 'ws/sub/.env.example': '', 'ws/.env.local': '' },
    expected: ['.env.example', '.gitignore', 'sub/.env.example'],
  },
  {
    name: 'a workspace .gitignore can un-exclude a default directory (!build/)',
    tree: {
      'ws/.gitignore': '!build/\n', 'ws/build/out.js': '', 'ws/build/sub/x.js': '', 'ws/build/x.log': '',
      'ws/dist/y.js': '',
    },
    expected: ['.gitignore', 'build/out.js', 'build/sub/x.js'],
  },
  {
    name: 'the workspaces-root .gitignore applies, relative to the workspaces root',
    tree: {
      '.gitignore': 'ws/secret.txt\n*.bak\n/ws/top\nws/**/deep.txt\n',
      'ws/secret.txt': '', 'ws/sub/secret.txt': '', 'ws/x.bak': '', 'ws/top': '', 'ws/sub/top': '',
      'ws/a/b/deep.txt': '', 'ws/.gitignore': '!keep.bak\n', 'ws/keep.bak': '',
    },
    expected: ['.gitignore', 'keep.bak', 'sub/secret.txt', 'sub/top'],
  },
  {
    name: '--exclude wins over a .gitignore ! and over the defaults',
    tree: {
      'ws/.gitignore': '!keep.txt\n', 'ws/keep.txt': '', 'ws/a.md': '', 'ws/.env.local': '', 'ws/sub/x': '', 'ws/x': '',
    },
    excludes: ['*.txt', '!.env.local', 'sub/x'],
    expected: ['.env.local', '.gitignore', 'a.md', 'x'],
  },
  {
    name: 'a symlinked .gitignore is not followed (git >= 2.32)',
    tree: { 'ws/real-ignore': 'a.txt\n', 'ws/.gitignore': { link: 'real-ignore' }, 'ws/a.txt': '' },
    expected: ['.gitignore', 'a.txt', 'real-ignore'],
  },
  {
    name: 'wildcards: ?, ranges, negated ranges',
    tree: {
      'ws/.gitignore': '?.md\n[a-c].txt\n[!a]?.dat\n',
      'ws/a.md': '', 'ws/ab.md': '', 'ws/a.txt': '', 'ws/d.txt': '', 'ws/ab.dat': '', 'ws/bb.dat': '', 'ws/b.dat': '',
    },
    expected: ['.gitignore', 'ab.dat', 'ab.md', 'b.dat', 'd.txt'],
  },
];

/** Cases with a .dockerignore (Docker's rules, so not comparable with git). */
export const DOCKER_CASES: FilterCase[] = [
  {
    name: '.dockerignore *.md matches only at its root; **/*.md anywhere',
    tree: {
      'ws/.dockerignore': '*.md\n**/*.tmp\n', 'ws/README.md': '', 'ws/docs/guide.md': '', 'ws/a.tmp': '', 'ws/d/e/b.tmp': '',
    },
    expected: ['.dockerignore', 'docs/guide.md'],
  },
  {
    name: '.dockerignore: a directory name excludes its contents; ! re-includes below it',
    tree: {
      'ws/.dockerignore': '# comment\ndocs\n!docs/keep.md\n',
      'ws/docs/a.txt': '', 'ws/docs/keep.md': '', 'ws/docs/sub/b.txt': '', 'ws/other/docs/c.txt': '',
    },
    expected: ['.dockerignore', 'docs/keep.md', 'other/docs/c.txt'],
  },
  {
    name: '.dockerignore: leading slash and ./ are relative to the workspace root; matching is case sensitive',
    tree: {
      'ws/.dockerignore': '/abs\n./rel/x\n*.MD\n', 'ws/abs': '', 'ws/sub/abs': '', 'ws/rel/x': '', 'ws/a.md': '',
    },
    expected: ['.dockerignore', 'a.md', 'sub/abs'],
  },
  {
    name: '.dockerignore cannot re-include what git excludes',
    tree: {
      'ws/.dockerignore': '!*.log\n!node_modules\n', 'ws/a.log': '', 'ws/node_modules/x': '', 'ws/b': '',
    },
    expected: ['.dockerignore', 'b'],
  },
  {
    name: '.dockerignore: ( ) + . are literal; ** in the middle',
    tree: {
      'ws/.dockerignore': 'file(1).txt\nc++\na/**/z\n', 'ws/file(1).txt': '', 'ws/file1.txt': '', 'ws/c++': '', 'ws/c': '',
      'ws/a/z': '', 'ws/a/b/c/z': '', 'ws/a/zz': '',
    },
    expected: ['.dockerignore', 'a/zz', 'c', 'file1.txt'],
  },
  {
    name: '.dockerignore: | keeps its regexp meaning in a pattern with a wildcard (as in Docker)',
    tree: { 'ws/.dockerignore': 'zz|nope/*\n', 'ws/zz/q': '', 'ws/a|b': '', 'ws/keep': '' },
    expected: ['.dockerignore', 'a|b', 'keep'],
  },
];
