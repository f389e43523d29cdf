"""In-memory stand-ins for the appliance's ports, for tests only.

Each fake implements one `typing.Protocol` of `appliance/` and runs the same behaviour suite
as the real part (`tests/behaviour/`), so a fake cannot drift from what it stands for:

* `clock.FakeClock` for `appliance.clock.Clock`
* `custody.FakeKeyCustody` for `appliance.hsm.KeyCustody` (real part: SoftHSM2)
* `blobs.MemoryBlobStore` for `appliance.storage.BlobStore` (real part: the file store)
* `directory` for the directory port (real part: slapd)

Import from the modules, not from this package, so a test loads only the fake it uses.
"""
