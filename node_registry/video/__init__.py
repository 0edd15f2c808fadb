"""The video pack: storyboards, slideshows of stills (captions, motion, cross-fades, sound), joining
clips, grabbing frames, subtitles and a report on the result.

The back half of the marketing pipeline: product facts and pictures in, an MP4, its `.srt`
and a `report.json` out.
"""

from nodeloom.node_registry.video.delivery import frame_size, report, subtitles
from nodeloom.node_registry.video.nodes import concat, slideshow, thumbnail
from nodeloom.node_registry.video.storyboard import finish_storyboard, storyboard

__all__ = ["concat", "finish_storyboard", "frame_size", "report", "slideshow", "storyboard", "subtitles", "thumbnail"]
