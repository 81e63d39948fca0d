// fuse-native ships no types; this is the part of its API mount.ts uses.
declare module 'fuse-native' {
  export interface FuseOptions {
    fsname?: string;
    subtype?: string;
    allowOther?: boolean;
    defaultPermissions?: boolean;
    autoCache?: boolean;
    kernelCache?: boolean;
    entryTimeout?: string;
    attrTimeout?: string;
    acAttrTimeout?: string;
    maxRead?: number;
    debug?: boolean;
    /** Per-operation answer deadline in ms (fuse-native answers ETIMEDOUT), or false for none. */
    timeout?: number | false;
  }
  export default class Fuse {
    constructor(mountpoint: string, ops: object, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
  }
}
