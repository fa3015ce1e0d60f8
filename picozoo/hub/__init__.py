"""The download side of picozoo: the registry, the store (cache layout, refs, pins, mirrors,
offline mode), resumable verified downloads, safe unpacking, verification, the checkpoint
reader and store maintenance.

Modules: :mod:`.registry`, :mod:`.store`, :mod:`.pull` (pull/pin an artifact),
:mod:`.download`, :mod:`.mirror`, :mod:`.unpack`, :mod:`.pins`, :mod:`.mutex`,
:mod:`.verify`, :mod:`.checkpoint`, :mod:`.maintenance`.
"""
