// Errno is the currency type for system-call failures across urun.
@_exported import struct SystemPackage.Errno
