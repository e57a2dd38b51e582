"""Reference files: reading their headers, indexing folders of them, choosing one per exposure, reading it.

- ``headers``: the selection keywords of one FITS or ASDF reference, from its header alone.
- ``index``: a folder's headers, cached as JSON and kept fresh from mtimes and sizes.
- ``selection``: the matching rules, the choice among candidates, and ``ReferenceSource``.
- ``store``: ``ReferenceStore``, the reference source over folders and the CRDS cache.
- ``crds``: ``CrdsRules``, the reference source following the rules (.pmap/.imap/.rmap) of one
  context of a CRDS cache, offline, and ``reference_selector`` (rules when a cache has them).
- ``origins``: where each choice came from, and the closest candidates of an unfilled type.
- ``choices``: ``ChosenReferences``, the reference source replaying a coordinator's choices.
- ``resolution``: overrides or a reference source → where each type comes from, then the records.
- ``readers``: reading and validating one reference file into its core record.
"""
