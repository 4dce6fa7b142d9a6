// Every kind of thing rundird reports, with a stable 128-bit MESSAGE_ID (never change one:
// people search the journal for them) and a syslog priority (3 err, 4 warning, 5 notice, 6 info).
// The journald catalog under systemd/ explains each id.

export const EVENTS = {
  'daemon-started': { id: '271828afad0a4435b2efc5a08b1f0a90', priority: 6, summary: 'rundird started' },
  'daemon-stopping': { id: '13e3f49f66cd41b8b0bc3d42f3ef3065', priority: 6, summary: 'rundird stopping' },
  'config-reloaded': { id: '1ec1f711cdba4bca9fcc6879d26cbeaf', priority: 6, summary: 'configuration reloaded' },
  'config-rejected': { id: 'ba2dd4b5fddd41429b3505acec212999', priority: 3, summary: 'new configuration rejected, the old one stays in force' },
  'rundir-appeared': { id: 'b828abc7639d48db8add00d6f40d6021', priority: 6, summary: 'a runtime directory appeared' },
  'rundir-mounted': { id: '929db41f62114c29a52e0ca2edbaf5b3', priority: 6, summary: 'a tmpfs was mounted over a runtime directory' },
  'rundir-unmounted': { id: '44a58a415d2343d2a03c17920f5bc3b0', priority: 6, summary: 'a runtime directory was unmounted' },
  'rundir-replaced': { id: '217d9eb095144c66bb3e0c01c282e457', priority: 5, summary: 'a runtime directory was replaced by a new one' },
  'rundir-removed': { id: 'ecfa174786eb4d7da9bdb6c98433c584', priority: 6, summary: 'a runtime directory was removed' },
  'rundir-refused': { id: '0ece4b9b3e474a258c1ff3b2e163ba42', priority: 4, summary: 'a runtime directory is not safe to write into' },
  'privdir-created': { id: 'e64f80e5e9d34bc894309edac67568c9', priority: 6, summary: 'snap private directory created' },
  'privdir-recreated': { id: '83e132793cfa4a0ca41f2138d10de639', priority: 5, summary: 'snap private directory re-created' },
  'privdir-corrected': { id: 'e697437b12cd4ab09a38fd25fe710f7b', priority: 5, summary: 'snap private directory owner or mode corrected' },
  'privdir-refused': { id: '500c0fdfda804efcadb666af135e0ecd', priority: 4, summary: 'snap private directory left untouched' },
  'privdir-removed': { id: '3c2b9f87887245c79385ef59aad12592', priority: 6, summary: 'snap private directory removed' },
  'privdir-left': { id: 'e9e146dcdc7a4d868aa502df72f9df29', priority: 5, summary: 'snap private directory left in place' },
  'snaps-changed': { id: 'a1c5107544684f7d83c43763970c7b28', priority: 6, summary: 'snap inventory changed' },
  'runtime-root-remounted': { id: '560718797fa949a094177ba83afe0d37', priority: 5, summary: 'a filesystem was mounted over the runtime root, or taken off it' },
  'mode-changed': { id: '60e4977927234f828b11ce6b22d8f0ed', priority: 5, summary: 'logind appeared or went away: rundird switched mode' },
  'rundir-state': { id: 'ea9bede8027b47b3b8508b3e04e517e1', priority: 6, summary: 'a runtime directory entered a new lifecycle state' },
  'bus-error': { id: 'c7fa6aa31bee4d479556330a8cacef69', priority: 4, summary: 'the system bus or a service on it failed or answered garbage' },
  'source-degraded': { id: '6e56dfdd4ac44f8ebb52e65898d18089', priority: 4, summary: 'an event source failed; rundird carries on without it' },
  'source-error': { id: '255d7e8a767e4512aa1a0c8fab3527f1', priority: 4, summary: 'an event source reported an error' },
  'reliant-without-linger': { id: 'd0a5c8f2b1e34f6a9c7d2e8b4f1a6c35', priority: 4, summary: 'a service outside any login session relies on a rundir that logind will remove' },
  'rundir-closing-under-services': { id: '5b9e2d7c4a1f4e8b8d3c6a0f2e7b9d14', priority: 3, summary: 'a rundir is being closed while services outside any session rely on it' },
  'sockets-hidden-by-mount': { id: 'a3f6e1c9d2b84a7e9f0c5d8b1e4a7c62', priority: 4, summary: 'a tmpfs is mounted over a plain rundir that holds live sockets' },
  'rundir-purged-under-services': { id: 'e7c2a9f4b6d14c3a8e5f1b9d0c6a2e87', priority: 3, summary: 'a rundir was removed under services that still rely on it' },
  'runtime-dir-missing': { id: '9f4b2e6d1c8a4f7b9e3d5a2c8b6f1e40', priority: 4, summary: "a running service's XDG_RUNTIME_DIR does not exist" },
  'api-unavailable': { id: '2c8e5a1f9d3b4e6c8a7f0d2b5e9c1a36', priority: 4, summary: 'the status API socket could not be opened; rundird runs without it' },
  'link-created': { id: '7d3e9a1c5b2f4e8a9c6d0b3f7e1a4c58', priority: 6, summary: 'a socket or file was linked into a private dir (or out of one)' },
  'link-replaced': { id: 'b4f8c2e6a9d14b7e8f3a5c1d9e6b2a70', priority: 6, summary: 'a stale link was replaced: its server made the socket anew' },
  'link-removed': { id: '3a9d6f2c8e1b4d7a9b5e0c3f6a8d1e24', priority: 6, summary: 'a link was removed: its source is gone or the snap is no longer entitled' },
  'link-refused': { id: 'f1c7e4a9b3d24f8e8a6c9d2b5f0e3a17', priority: 4, summary: 'a link was not made: unsafe source, occupied target or a path through a symlink' },
  'snapd-unavailable': { id: '6c2a8e5f1d9b4a3c8e7f2d0b6a9c4e51', priority: 4, summary: 'snapd could not be asked; the last known snaps and connections stay in force' },
  'snapd-changed': { id: 'e2b9d5a8c1f64e3b9a7d4c0e8f2b6a93', priority: 6, summary: 'snapd reported other snaps or interface connections' },
} as const;

export type EventName = keyof typeof EVENTS;
