"""``loaphuong unit``: the unit agent for Linux boards (docs/unit.md).

The same node as the simulator (:class:`~firmware_sim.node.SimNode`: one implementation of the
contract's node-side rules) with real outputs: a sound card (:mod:`.pulse`), a power line
(:mod:`.power`), the board's own readings (:mod:`.board`) and a state directory that survives
reboots (:mod:`.state`).
"""
