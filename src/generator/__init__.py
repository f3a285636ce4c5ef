"""The synthetic world generator's parts: the world's parameters and latent state (:mod:`.world`),
blocks of customers (:mod:`.blocks`) with their transactions (:mod:`.transactions`) and events
(:mod:`.events`), and the ground truth (:mod:`.truth`). The entry points are in :mod:`churnclv.generate`."""
