// Where the system bus is, in a module of its own: the daemon's entry point needs the address
// before it knows whether D-Bus is used at all, and must not load dbus-next to learn it.

export function systemBusAddress(env: NodeJS.ProcessEnv): string {
  return env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}
