"""
Storage of the C{models} service (L{prism.services.models}): C{memory}
(L{prism.models.memory}) and C{redis} (L{prism.models.redis}).

A store keeps, per document, its version, its value and its last changes,
and applies a change only when the document is still at the version the
change was made against (compare-and-set). See L{prism.models.memory.MemoryModelStore}
for the interface every store implements.
"""
