"""Pieces several methods share: networks and how views go through them, momentum targets,
masking, patches, token packing, the pretext tasks' parts classifier, encoder-decoders.

Nothing here is a method (no module defines METHOD), so a method may import any of it while
no method imports another (tests/test_layering.py).
"""
