"""Request analysis without the LLM: clauses, slots read by rules, and back-references.

A request is split into clauses at sentence ends, semicolons, "then", and at "and" / commas
that start a new verb phrase. Each clause gets the slots its words name (sizes, counts,
durations, languages, field names, tones, file names, quoted text) and a flag saying it
refers back ("it", "them", "each", "its ...") to what an earlier clause made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NUMBER_WORDS = {
    "one": 1, "a single": 1, "single": 1, "two": 2, "a couple of": 2, "couple of": 2, "pair of": 2, "three": 3,
    "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12,
}
LANGUAGES = (
    "English", "French", "German", "Spanish", "Italian", "Portuguese", "Dutch", "Japanese", "Chinese", "Korean",
    "Polish", "Swedish", "Norwegian", "Danish", "Finnish", "Russian", "Ukrainian", "Arabic", "Turkish", "Greek",
    "Hindi", "Czech", "Hungarian", "Romanian", "Vietnamese", "Thai", "Indonesian", "Hebrew",
)
TONES = ("formal", "casual", "friendly", "playful", "professional", "persuasive", "humorous", "funny", "serious",
         "enthusiastic", "concise", "warm", "polite", "neutral", "upbeat")
#: named formats: aspect words and ratios to a width and height
ASPECTS = {
    "9:16": (1080, 1920), "16:9": (1920, 1080), "1:1": (1080, 1080), "4:5": (1080, 1350),
    "vertical": (1080, 1920), "vertically": (1080, 1920), "portrait": (1080, 1920), "story": (1080, 1920),
    "landscape": (1920, 1080),
    "widescreen": (1920, 1080), "square": (1080, 1080), "instagram": (1080, 1080),
}
#: aspect words that are also nouns ("touch up my portrait")
_NOUN_ASPECTS = ("portrait",)
_COUNT_NOUNS = (r"(images?|pictures?|photos?|variations?|versions?|scenes?|slides?|cards?|lines?|steps?|items?|"
                r"ideas?|headlines?|names?|titles?|points?|bullets?|questions?|reasons?|tips?|options?|variants?|"
                r"shots?|taglines?|tweets?|posts?|sentences?|paragraphs?|frames?|facts?|thumbnails?|banners?|posters?|logos?|"
                r"icons?|stickers?|illustrations?|drawings?|renders?|covers?|backgrounds?|wallpapers?|designs?|mockups?|"
                r"ads?|adverts?|slogans?|captions?|quotes?|jokes?|emails?|messages?|replies?|descriptions?|summaries?|"
                r"examples?|suggestions?|concepts?|portraits?|sketches?|paintings?|artworks?|scenarios?|stories?|"
                r"poems?|haikus?|subject lines?|hashtags?|keywords?|tags?|clips?|panels?)")
_NUMBER = r"(\d+|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
_SIZE = re.compile(r"\b(\d{2,5})\s*(?:x|×|by)\s*(\d{2,5})\b", re.I)
_WIDE = re.compile(r"\b(\d{2,5})\s*(?:px|pixels)?\s*wide\b", re.I)
# "one card per step", "a picture for each scene": a count per item, not how many in all
_COUNT = re.compile(rf"\b{_NUMBER}\s+(?:(?!(?:per|each|for)\b)[a-z-]+\s+){{0,3}}?{_COUNT_NOUNS}\b"
                    r"(?!\s+(?:per|for\s+(?:each|every)|each)\b)", re.I)
_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?)[- ]?(?:s\b|sec\b|secs\b|seconds?\b)", re.I)
_AT_MARK = re.compile(r"\b(?:at|from)\s+(?:the\s+)?(\d+(?:\.\d+)?)[- ]?(?:s\b|sec\w*|second\w*)", re.I)
_FIELD = re.compile(r"\b(?:its|the|their|a|an)\s+['\"`]?([a-z_][\w.]*)['\"`]?\s+"
                    r"(?:field|value|key|property|attribute)\b"
                    r"|\b(?:its|the|their)\s+([a-z_][\w.]*)\s+(?:list|array)\b", re.I)
_FIELD_QUOTED = re.compile(r"\bfield\s+['\"`]([a-z_][\w.]*)['\"`]", re.I)
_FILENAME = re.compile(r"\b([\w-]+\.(?:txt|json|md|csv|png|jpg|jpeg|wav|mp4|mp3|html))\b", re.I)
_FORMAT = re.compile(r"\bas (?:a |an )?(png|jpe?g|json|markdown|text|csv|wav|mp4)\b(?: file)?"
                     r"|\b(?:to|into|in) (?:a |an )?(png|jpe?g|json|markdown|text|csv|wav|mp4) file\b", re.I)
#: "at the top of each", "across the middle": where words go on a picture
_PLACE = re.compile(r"\b(?:at|along|across|to|on|in|over)\s+the\s+(top|bottom|centre|center|middle)\b", re.I)
#: "with a DELETE to the booking API", "send a PATCH": the HTTP method, written in capitals
_METHOD = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\b")
_QUOTED = re.compile(r"(?:^|[\s(:])['\"“‘]([^'\"”’]{2,80})['\"”’]")
_STYLES = re.compile(r"\b(?:in|as)\s+(?:a\s+|an\s+)?([a-z]+(?:\s[a-z]+)?)\s+style\b", re.I)
_ONE_EACH = re.compile(r"\bone\s+(?:in\s+(?:an?\s+)?)?([A-Za-z][\w-]*)(?:\s+style)?\b", re.I)
_NOT_STYLES = {"for", "of", "per", "more", "at", "the", "a", "an", "by", "each", "with", "in", "on", "to", "second",
               "seconds", "minute", "line", "picture", "image", "photo", "version", "card", "slide", "and", "or"}
_STYLE_WORDS = re.compile(r"\b(?:styles?|versions|variations|variants|looks|restyled|edited|redesigns?|takes)\b", re.I)
_PER_ITEM_LEAD = re.compile(r"^(?:for\s+)?(?:each|every|per)\b", re.I)
#: a piece that goes on listing what the clause before it names ("the address and the headers")
_CONTINUES = re.compile(r"^(?:and\s+|or\s+|plus\s+)?(?:the|a|an|one|two|three|its|their|my|our|both|each)\b", re.I)
#: a piece that sets up the clause after it ("From a product blurb, ...", "Using the diffusion model, ...")
_LEADS_INTO = re.compile(r"^(?:from|using|with|for|based on|in|on|given|out of|by)\b", re.I)
#: the markers of a numbered list of steps: "1) ", "2. ", "(3) "
_NUMBERED = re.compile(r"(?:^|(?<=[\s:,;]))\(?\d{1,2}[).]\s+(?=[A-Za-z])")
_STRONG = re.compile(r"[.!?;]|\bthen\b|\bafter that\b|\bfinally\b", re.I)
#: "each with an owner": describes the items of the clause before it
_QUALIFIER = re.compile(r"^(?:each|every one|all)\s+(?:with|having|of which)\b", re.I)
_VERB_INSIDE = re.compile(
    r"\b(?:make|create|generate|write|turn|render|build|resize|speak|read|save|send|post|becomes?|gets?)\b", re.I)
#: words that refer back to what an earlier clause made
_BACK = re.compile(r"\b(it|its|them|they|those|these|that|the result|the results|each|every|the same)\b", re.I)
_SPLIT = re.compile(
    r"(?<=[.!?;])\s+|\s*;\s*|,?\s+(?:and\s+)?then\s+|,?\s+after that,?\s+|,?\s+and finally\s+|,?\s+finally\s+|"
    r",\s+(?:and\s+)?(?=(?:also\s+)?(?:\w+ly\s+)?(?:" + "|".join((
        "add", "ask", "assemble", "build", "call", "check", "classify", "collect", "combine", "convert",
        "create", "critique", "download", "draft", "edit", "email", "extract", "fetch", "format", "generate", "get",
        "give", "grab", "have", "join", "keep", "let", "list", "make", "merge", "multiply", "narrate", "notify",
        "overlay", "pull", "post", "produce", "put", "read", "render", "resize", "return", "rewrite", "save",
        "send", "speak", "stitch", "store", "summarise", "summarize", "take", "tell", "translate", "turn", "use",
        "write", "each", "every", "the", "one", "post", "publish", "review", "design", "illustrate", "sketch", "scrape",
        "parse", "rank", "shrink", "crop", "watermark", "stamp", "explain", "describe", "prepare", "upload",
        "localise", "localize", "announce", "draw", "paint", "ping", "export", "attach", "scale", "overlay")) + r")\b)"
    r"|\s+and\s+(?=(?:also\s+)?(?:then\s+)?(?:" + "|".join((
        "add", "assemble", "classify", "collect", "combine", "convert", "create", "critique", "edit", "extract",
        "format", "generate", "give", "grab", "join", "keep", "make", "merge", "multiply", "narrate", "notify",
        "overlay", "pull", "post", "publish", "put", "read", "render", "resize", "rewrite", "save", "send", "speak",
        "stitch", "store", "summarise", "summarize", "take", "tell", "translate", "turn", "write", "email",
        "upload", "return", "sum", r"answer(?=\s+(?:my|the|a|an|this|that|it|them|our|your|each|every)\b)",
        "compose", "draw", "paint", "scale", "crop", "gather", "label",
        "condense", "describe", "query", "submit", "restyle", "proofread", "polish", "rephrase", "reword", "ping",
        "compute", "calculate", "measure", "attach", "shorten", "fetch", "download", "call", "store", "export",
        "narrate", "voice", "review", "design", "illustrate", "sketch", "scrape", "parse", "rank", "shrink",
        "watermark", "stamp", "explain", "prepare", "localise", "localize", "announce", "animate", "dub", "push",
        "forward", "deliver")) + r")\b)",
    re.I,
)
#: a piece with none of these (nor a subject of its own) continues the clause before it: "get the name, the price
#: and the features", "build a report with the status, the address and the headers"
_ACTION = re.compile(r"\b(?:" + "|".join(sorted({
    *re.findall(r"[a-z]+", _SPLIT.pattern.split("(?=")[1]), "answer", "sum", "compose", "draw", "paint", "scale",
    "crop", "gather", "label", "condense", "describe", "query", "submit", "restyle", "proofread", "polish",
    "rephrase", "reword", "ping", "compute", "calculate", "measure", "attach", "shorten", "download", "call",
    "export", "upload", "email", "become", "want", "need", "show", "tell", "find", "check", "plan", "storyboard",
    "outline", "spoken", "burn", "caption", "is", "are", "be"} - {
    "each", "every", "the", "one", "also", "and", "then", "ly", "w", "list", "use"}))
    + r")(?:s|es|ed|d|ing|n)?\b", re.I)


#: words a request is likely to misspell, for `correct_typos`: the verbs that split clauses, the catalog's nouns
_KNOWN_NOUNS = ("picture", "image", "photo", "video", "summary", "episode", "thumbnail", "slideshow", "caption",
                "webhook", "language", "narration", "voice-over", "request", "address", "article", "newsletter",
                "translation", "description", "restaurant", "product", "storyboard", "background", "document",
                "vertical", "horizontal", "landscape", "window", "banner", "poster", "schedule", "forecast",
                "reminder", "message", "speech", "audio", "square", "weather", "receipt", "invoice", "announcement")
#: short words slipped often enough to put right by name (words under five letters are otherwise left alone)
_SHORT_SLIPS = {"teh": "the", "hte": "the", "adn": "and", "nad": "and", "wiht": "with", "taht": "that"}
_BASE_WORDS = set(re.findall(r"[a-z]+", " ".join(_SPLIT.pattern.split("(?=")[1:]) + " " + " ".join(_KNOWN_NOUNS)))
#: with their inflections, so that "summaries" is a known word, not a slip of "summarise"
_VOCABULARY = frozenset(form for word in _BASE_WORDS for form in (
    word, word + "s", word + "es", word + "d", word + "ed", word + "ing", word[:-1] + "ies", word[:-1] + "ing",
    word[:-1] + "ed") if len(form) >= 5)
#: what a slip is put right to: the words themselves, not their inflections
_TARGETS = frozenset(word for word in _BASE_WORDS if len(word) >= 5)
_WORD = re.compile(r"[A-Za-z]{5,}")
_SHORT_SLIP = re.compile(r"\b(?:" + "|".join(_SHORT_SLIPS) + r")\b", re.I)


def _near_misses(word: str) -> set[str]:
    """Words one slip away from `word`: two neighbouring letters swapped, or one letter left out."""
    swaps = {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}
    missing = {word[:i] + letter + word[i:] for i in range(len(word) + 1) for letter in "abcdefghijklmnopqrstuvwxyz"}
    return swaps | missing


def correct_typos(text: str) -> str:
    """`text` with slips in the words a request is read by put right: "Wirte" -> "Write", "Genrate" ->
    "Generate", "narate" -> "narrate". Only words of five letters or more that are not themselves known, and
    only when exactly one known word is a swap of two neighbouring letters or one missing letter away."""
    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        lowered = word.lower()
        if lowered in _VOCABULARY:
            return word
        found = _near_misses(lowered) & _TARGETS
        if len(found) != 1:
            return word
        right = found.pop()
        return right.capitalize() if word[0].isupper() else right

    def short(match: re.Match[str]) -> str:
        word = match.group(0)
        right = _SHORT_SLIPS[word.lower()]
        return right.capitalize() if word[0].isupper() else right

    return _SHORT_SLIP.sub(short, _WORD.sub(fix, text))


@dataclass
class Clause:
    """One clause of a request: its words, where it starts, the slots read from it, and whether it refers back."""

    index: int
    text: str
    start: int
    slots: dict[str, Any] = field(default_factory=dict)
    refers_back: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "slots": self.slots, "refers_back": self.refers_back}


def number_of(word: str) -> int | None:
    """`3` or `three` as an int; None for anything else."""
    lowered = word.lower()
    if lowered.isdigit():
        return int(lowered)
    return NUMBER_WORDS.get(lowered)


def read_slots(text: str) -> dict[str, Any]:
    """The slots a piece of request text names, by rules (see the module docstring)."""
    slots: dict[str, Any] = {}
    sizes = [(int(w), int(h)) for w, h in _SIZE.findall(text)]
    lowered = text.lower()
    for word, size in ASPECTS.items():
        if word in _NOUN_ASPECTS and re.search(
                rf"\b(?:my|your|our|his|her|this|the|a)\s+{word}s?\b(?!\s+(?:format|mode|version|size))", lowered):
            continue  # "my portrait" is a picture, not a format
        if re.search(rf"(?<![\w:]){re.escape(word)}(?![\w:])", lowered) and size not in sizes:
            sizes.append(size)
    if sizes:
        slots["size"] = sizes
        slots["width"], slots["height"] = sizes[0]
    elif wide := _WIDE.search(text):
        width = int(wide.group(1))
        slots["size"] = [(width, round(width * 9 / 16))]
        slots["width"], slots["height"] = slots["size"][0]
    if count := _COUNT.search(text):
        value = number_of(count.group(1))
        if value is not None and 0 < value <= 16:
            slots["count"] = value
    if at := _AT_MARK.search(text):
        slots["at"] = float(at.group(1))
    elif seconds := _SECONDS.search(text):
        slots["seconds"] = float(seconds.group(1))
    languages = [name for name in LANGUAGES if re.search(rf"\b{name}\b", text)]
    if languages:
        slots["language"] = languages
    tones = [tone for tone in TONES if re.search(rf"\b{tone}\b", lowered)]
    if tones:
        slots["tone"] = tones
    # "the model list(s) ...": a subject, not a field
    not_fields = {"same", "first", "whole", "new", "json", "items", "model", "llm", "ai", "assistant"}
    fields = [m for pair in _FIELD.findall(text) for m in pair if m and m.lower() not in not_fields]
    fields += _FIELD_QUOTED.findall(text)
    if fields:
        slots["field"] = list(dict.fromkeys(fields))
    if filename := _FILENAME.search(text):
        slots["filename"] = filename.group(1)
    elif fmt := _FORMAT.search(text):
        named = (fmt.group(1) or fmt.group(2)).lower()
        extension = {"jpeg": "jpg", "markdown": "md", "text": "txt"}.get(named, named)
        slots["filename"] = f"result.{extension}"
    if place := _PLACE.search(text):
        slots["position"] = {"centre": "center", "middle": "center"}.get(place.group(1).lower(), place.group(1).lower())
    if method := _METHOD.search(text):
        slots["method"] = method.group(1)
    if quoted := _QUOTED.search(text):
        slots["text"] = quoted.group(1)
    styles = _STYLES.findall(text)
    # "three versions: one in Japandi style, one rustic and one minimalist"
    ones = [word for word in _ONE_EACH.findall(text) if word.lower() not in _NOT_STYLES]
    if len(ones) >= 2 and _STYLE_WORDS.search(text):
        styles = list(dict.fromkeys(ones))
    if styles:
        slots["style"] = styles
    return slots


def split_clauses(request: str) -> list[Clause]:
    """The request's clauses, in order, with their slots and back-reference flags."""
    clauses: list[Clause] = []
    position = 0
    if len(_NUMBERED.findall(request)) >= 2:  # "1) fetch the routes, 2) take the 'stops' list, ...": one step each
        request = _NUMBERED.sub("; ", request)
    pieces = [piece for piece in _SPLIT.split(request) if piece is not None]
    # whether the boundary before each piece is a sentence end, a semicolon, "then" or "finally"
    strong = [True] + [bool(_STRONG.search(m.group(0))) or request[max(m.start() - 1, 0)] in ".!?;"
                       for m in _SPLIT.finditer(request)]

    def merge(first: int, text: str) -> None:
        pieces[first:first + 2] = [text]
        del strong[first + 1]

    # "for each line of my poem, make a card": the per-item phrase belongs to the next clause
    # but one that ends a sentence ("extract the items, each with an owner.") qualifies the clause before it
    for number in range(len(pieces) - 1, -1, -1):
        piece = pieces[number].strip()
        if not _PER_ITEM_LEAD.match(piece) or _VERB_INSIDE.search(piece):
            continue
        if piece.endswith((".", "!", "?")) or number == len(pieces) - 1 or _QUALIFIER.match(piece):
            if number > 0 and not pieces[number - 1].strip().endswith((".", "!", "?")):
                merge(number - 1, pieces[number - 1].rstrip(" ,") + ", " + piece)
        else:
            merge(number, pieces[number] + ", " + pieces[number + 1].lstrip(" ,"))
    # a piece without an action of its own continues a clause ("the price and the features")
    for number in range(len(pieces) - 1, -1, -1):
        piece = pieces[number].strip()
        if not piece or _ACTION.search(piece) or len(pieces) == 1:
            continue
        if number > 0 and not strong[number] and _CONTINUES.match(piece):
            merge(number - 1, pieces[number - 1].strip().rstrip(" ,") + ", " + piece)
        elif number + 1 < len(pieces) and not strong[number + 1] and _LEADS_INTO.match(piece):
            merge(number, piece.rstrip(" ,") + ", " + pieces[number + 1].strip())
    for piece in pieces:
        start = request.find(piece.split(", ")[0], position) if piece else position
        position = max(position, start + len(piece))
        text = piece.strip(" ,.;:!?")
        if len(text) < 3:
            continue
        index = len(clauses)
        clauses.append(Clause(index, text, max(start, 0), read_slots(text), bool(index and _BACK.search(text))))
    return clauses or [Clause(0, request.strip(), 0, read_slots(request))]


__all__ = ["Clause", "correct_typos", "number_of", "read_slots", "split_clauses"]
