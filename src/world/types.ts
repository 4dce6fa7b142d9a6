// What rundird knows about the world: plain data, no behaviour.

/** 'mount': a mount point below a rundir (from the mount table): never entered, not even lstat'ed. */
export type NodeKind = 'dir' | 'symlink' | 'file' | 'socket' | 'fifo' | 'other' | 'mount';

export interface NodeStat {
  kind: NodeKind;
  uid: number;
  gid: number;
  /** Permission bits only (mode & 0o7777). */
  mode: number;
  ino: number;
  dev: number;
  /** Birth time (statx), ms; 0 where the filesystem keeps none. An inode number is reused, this is not. */
  btime?: number;
  /** An entry that is a mount's root, of a filesystem that never blocks (tmpfs): entered only as this very inode. */
  mountRoot?: true;
}

export interface MountRef {
  id: number;
  fsType: string;
}

/** A rundir as read from disk at one moment. */
export interface RundirActual {
  uid: number;
  path: string;
  /** null: nothing at the path. */
  node: NodeStat | null;
  /** The mount whose mount point is exactly this path, if any. */
  mount: MountRef | null;
  /** lstat of the entries the planner asked about; null = absent. */
  entries: Map<string, NodeStat | null>;
  /** A mount's root was found that the mount table read before did not have: read it again. */
  unknownMount?: boolean;
}

/** A private dir rundird made, recorded so that it only ever removes its own. */
export interface CreatedRecord {
  ino: number;
  dev: number;
}

export type RundirStatus =
  | 'absent'
  | 'plain' // a directory that is not a mount point
  | 'tmpfs' // a tmpfs mounted on it, as logind does
  | 'mounted' // another filesystem mounted on it
  | 'symlink'
  | 'not-dir'
  | 'root-owned' // owned by root, not yet by its user: logind's start leaves it so until the tmpfs is on it
  | 'foreign-owner'; // a directory whose owner is neither the UID it is named after nor root

export function kindOfMode(mode: number): NodeKind {
  switch (mode & 0o170000) {
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o100000:
      return 'file';
    case 0o140000:
      return 'socket';
    case 0o010000:
      return 'fifo';
    default:
      return 'other';
  }
}
