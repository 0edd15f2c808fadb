"""The video pack: slideshows of stills with captions and sound, joining clips, grabbing frames.

The last step of the marketing pipeline: generated images and narration in, an MP4 out.
"""

from nodeloom.node_registry.video.nodes import concat, slideshow, thumbnail

__all__ = ["concat", "slideshow", "thumbnail"]
