"""Experiments: deterministic assignment of users to arms, interleaving of rankers, and the
statistics that say whether an arm won — pure logic, no I/O (the service is
`overdrive.services.experiments`)."""
