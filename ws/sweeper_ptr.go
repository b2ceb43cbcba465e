package ws

import "unsafe"

// uintptrOf spreads devices over the live shards by address.
func uintptrOf(d *device) uintptr { return uintptr(unsafe.Pointer(d)) }
