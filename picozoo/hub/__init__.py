"""The download side of picozoo: the registry, the store (cache layout, refs, pins, mirrors,
offline mode), resumable verified downloads, safe unpacking, verification, the checkpoint
reader and store maintenance.

Modules: :mod:`.registry`, :mod:`.store` (owns every path under the cache),
:mod:`.partial` (partial-download names), :mod:`.eval_result` (typed eval results),
:mod:`.pull` (pull/pin an artifact), :mod:`.download` (picks a downloader per URL scheme from
:mod:`.downloaders`), :mod:`.disk`, :mod:`.mirror`, :mod:`.unpack`, :mod:`.pins`,
:mod:`.mutex`, :mod:`.verify`, :mod:`.checkpoint`, :mod:`.maintenance`.
"""
