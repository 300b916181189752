"""Typed value samplers: plausible argument values chosen from a parameter's name, description and schema.

A request that mentions "base 12 and height 7" teaches more than one that mentions "base 58213"; and a
path parameter filled with a city teaches the wrong thing. Every sampler takes an explicit
``random.Random`` so a seed reproduces a dataset exactly (no global random state).
"""

from __future__ import annotations

import random
import re
from typing import Any

from tooltune.data.value_hints import description_examples

CITIES = [
    "Paris",
    "Tokyo",
    "New York",
    "San Francisco",
    "Berlin",
    "London",
    "Sydney",
    "Toronto",
    "Madrid",
    "Chicago",
    "Seattle",
    "Boston",
    "Mumbai",
    "Cairo",
    "Lisbon",
    "Austin",
    "Denver",
    "Rome",
    "Oslo",
    "Buenos Aires",
    "Nairobi",
    "Seoul",
    "Amsterdam",
    "Vienna",
    "Dublin",
    "Los Angeles",
    "Miami",
]
# "City, ST" / "City, Country": the full form a request gives and the call must keep whole.
CITY_FULL = {
    "Paris": "Paris, France",
    "Tokyo": "Tokyo, Japan",
    "New York": "New York, NY",
    "San Francisco": "San Francisco, CA",
    "Berlin": "Berlin, Germany",
    "London": "London, UK",
    "Sydney": "Sydney, Australia",
    "Toronto": "Toronto, Canada",
    "Chicago": "Chicago, IL",
    "Seattle": "Seattle, WA",
    "Boston": "Boston, MA",
    "Austin": "Austin, TX",
    "Denver": "Denver, CO",
    "Los Angeles": "Los Angeles, CA",
    "Miami": "Miami, FL",
    "Rome": "Rome, Italy",
}
# "New York, NY" -> "New York": what a request may say when the schema asks for the full form
CITY_OF_FULL = {full: city for city, full in CITY_FULL.items()}
COUNTRIES = [
    "France",
    "Japan",
    "Canada",
    "Brazil",
    "Germany",
    "India",
    "Kenya",
    "Spain",
    "Italy",
    "Mexico",
    "Norway",
    "Australia",
    "Egypt",
    "Chile",
    "Vietnam",
    "Portugal",
]
STATES = ["California", "Texas", "New York", "Florida", "Illinois", "Washington", "Ohio", "Oregon"]
PEOPLE = [
    "Alice Johnson",
    "Bob Smith",
    "Maria Garcia",
    "Wei Chen",
    "Priya Patel",
    "John Miller",
    "Emma Brown",
    "Liam Wilson",
    "Sofia Rossi",
    "Kenji Tanaka",
    "Fatima Khan",
    "Lucas Martin",
]
FIRST_NAMES = ["Alice", "Bob", "Maria", "Wei", "Priya", "John", "Emma", "Liam", "Sofia", "Kenji", "Omar"]
COMPANIES = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Labs",
    "Stark Industries",
    "Wayne Enterprises",
    "Tesla",
    "Apple",
    "Microsoft",
    "Netflix",
]
TEAMS = ["Lakers", "Warriors", "Real Madrid", "Manchester United", "Yankees", "Chicago Bulls", "Barcelona"]
LANGUAGES = ["Python", "JavaScript", "Rust", "Go", "TypeScript", "Java", "C#", "C++"]
HUMAN_LANGUAGES = ["Spanish", "French", "German", "Japanese", "Italian", "Portuguese", "English"]
# ISO codes and what people call them: a request may say "Canadian dollars" for a call's "CAD"
CURRENCY_NAMES = {
    "USD": ("US dollars", "U.S. dollars"),
    "EUR": ("euros",),
    "GBP": ("British pounds", "pounds sterling"),
    "JPY": ("Japanese yen",),
    "CAD": ("Canadian dollars",),
    "AUD": ("Australian dollars",),
    "CHF": ("Swiss francs",),
    "INR": ("Indian rupees",),
    "CNY": ("Chinese yuan",),
    "MXN": ("Mexican pesos",),
}
CURRENCIES = list(CURRENCY_NAMES)
TICKERS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "META", "BRK.B"]
STOCK_INDEXES = ["S&P 500", "Dow Jones", "NASDAQ", "FTSE 100", "Nikkei 225", "Russell 2000"]
MUSIC_KEYS = ["C", "G", "D", "A", "E", "F", "F#", "C#", "Bb", "Eb", "Ab"]
MONTHS = ["January", "March", "April", "June", "July", "September", "October", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SPORTS = ["basketball", "soccer", "tennis", "cricket", "baseball", "golf", "hockey"]
INGREDIENTS = ["chicken", "tomatoes", "rice", "spinach", "garlic", "mushrooms", "tofu", "eggs"]
SUBSTANCES = ["water", "ethanol", "iron", "mercury", "copper", "nitrogen"]
DISCOVERIES = ["penicillin", "radioactivity", "the electron", "X-rays", "natural selection", "insulin"]
METALS = ["gold", "silver", "platinum", "copper", "palladium"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black"]
GENRES = ["jazz", "rock", "classical", "hip hop", "pop", "blues", "science fiction", "mystery"]
FOODS = ["Italian", "Mexican", "Thai", "Japanese", "Indian", "vegan", "French"]
UNITS_LENGTH = ["meters", "cm", "inches", "feet", "km", "miles"]
UNITS_MASS = ["kg", "grams", "pounds"]
UNITS_TEMP = ["celsius", "fahrenheit"]
UNITS_GENERIC = ["units", "meters", "cm", "inches"]
CODE_DIRS = [
    "src",
    "src/app",
    "lib",
    "tests",
    "tooltune/training",
    "pkg/server",
    "scripts",
    "docs",
    "src/utils",
    "app/models",
    "web/components",
]
CODE_FILES = [
    "main.py",
    "utils.py",
    "config.yaml",
    "README.md",
    "app.js",
    "server.go",
    "models.py",
    "test_api.py",
    "index.ts",
    "Cargo.toml",
    "setup.cfg",
    "handlers.py",
    "schema.sql",
    "Makefile",
]
SPACED_FILES = ["release notes.md", "My Report.txt", "data export.csv", "meeting notes 2024.md"]
SEARCH_TERMS = [
    "TODO",
    "def main",
    "import numpy",
    "raise ValueError",
    "async def",
    "FIXME",
    "class User",
    "timeout",
    "logger.warning",
    "http://",
    "deprecated",
]
COMMANDS = ["python", "pytest", "git", "npm", "ls", "make", "cargo", "ruff", "node", "go"]
TOPICS = [
    "machine learning",
    "climate change",
    "the Roman Empire",
    "quantum computing",
    "jazz history",
    "renewable energy",
    "the French Revolution",
    "photosynthesis",
    "black holes",
    "marathon training",
]
SENTENCES = [
    "Hello, world!",
    "The meeting is moved to Friday.",
    "Fix the login bug before release.",
    "Remember to buy milk",
    "print('hello')",
    "All tests pass now.",
    "Deploy at 5 pm sharp",
]
PRODUCTS = ["laptop", "running shoes", "coffee maker", "headphones", "desk lamp", "backpack", "smartphone"]
SPECIES = ["African elephant", "bald eagle", "grey wolf", "monarch butterfly", "blue whale", "red fox"]
EXPRESSIONS = ["3*x**2 + 2*x - 1", "x**3 - 4*x", "2*x + 5", "sin(x) * x", "x**2 - 9", "exp(x) + 1"]
GENERIC_WORDS = ["alpha", "summit", "harbor", "quartz", "meadow", "orbit", "cedar", "pixel", "ember", "delta"]


def words_of(name: str) -> list[str]:
    """``maxResults`` / ``max_results`` / ``math.hypot`` -> ``["max", "results"]`` etc."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", name) if w]


def _has(words: set[str], text: str, *keys: str) -> bool:
    return any(k in words or (" " in k and k in text) for k in keys)


MONEY_KEYS = (
    "amount",
    "price",
    "cost",
    "salary",
    "income",
    "principal",
    "budget",
    "payout",
    "revenue",
    "equity",
    "investment",
    "dividend",
    "dividends",
    "profit",
    "loan",
    "deposit",
    "capital",
    "earnings",
    "expenses",
    "debt",
)
BIG_COUNT_KEYS = ("shares", "population")
RATE_KEYS = ("rate", "interest", "return", "yield", "growth", "discount")


def number_kind(name: str, schema: dict[str, Any]) -> str | None:
    """What a numeric parameter measures, as far as a request's wording goes: ``money`` ("$2,000,000"),
    ``big_count`` (shares, population: "100 million"), ``decimal_rate`` (a rate passed as 0.05 and
    said as "5%"), ``percent_rate`` (a rate passed as 5.0, "as a percentage"), or None."""
    words = set(words_of(name))
    desc = str(schema.get("description", "")).lower()
    desc_words = set(re.findall(r"[a-z]+", desc))
    if schema.get("type") == "number" and words & set(RATE_KEYS) and not _has(words, "", "count", "number"):
        return "percent_rate" if desc_words & {"percent", "percentage"} else "decimal_rate"
    if words & set(MONEY_KEYS) or (words & {"total", "net", "initial"} and desc_words & set(MONEY_KEYS)):
        return "money"
    if words & set(BIG_COUNT_KEYS) or (desc_words & set(BIG_COUNT_KEYS) and "number" in words):
        return "big_count"
    return None


def _round_big(rng: random.Random, lo: float, hi: float) -> int | None:
    """A round figure people write with separators or words: 2,000,000 / 50 million / 15,000."""
    for _ in range(10):
        v = rng.choice([1, 2, 3, 5, 10, 12, 15, 20, 25, 50, 75, 100, 150, 250, 500]) * 10 ** rng.randint(3, 6)
        if lo <= v <= hi:
            return v
    return None


def sample_value(
    rng: random.Random, name: str, schema: dict[str, Any], *, edge: bool = False, depth: int = 0
) -> Any:
    """One value valid against ``schema``; ``edge`` favours awkward-but-valid values (spaces, zero,
    negatives, long strings) so the model sees them too."""
    if "enum" in schema and schema["enum"]:
        return rng.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    typ = schema.get("type")
    if isinstance(typ, list):
        non_null = [t for t in typ if t != "null"]
        typ = rng.choice(non_null) if non_null else None
    if typ is None:
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return sample_value(rng, name, rng.choice(schema[key]), edge=edge, depth=depth)
        typ = "object" if "properties" in schema else "string"
    desc = str(schema.get("description", "")).lower()
    words = set(words_of(name))
    text = " ".join(words_of(name)) + " " + desc
    if typ == "boolean":
        return rng.random() < 0.5
    if typ == "integer":
        return _sample_int(rng, words, text, schema, edge, number_kind(name, schema))
    if typ == "number":
        return _sample_float(rng, words, text, schema, edge, number_kind(name, schema))
    if typ == "array":
        item_schema = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
        if not item_schema.get("description") and schema.get("description"):
            item_schema = {**item_schema, "description": schema["description"]}
        lo = int(schema.get("minItems", 1 if not edge else 1))
        hi = int(schema.get("maxItems", max(lo, 4)))
        n = rng.randint(max(lo, 1), max(min(hi, lo + 3), max(lo, 1)))
        singular = _singular(name)
        out: list[Any] = []
        for _ in range(n * 4):
            v = sample_value(rng, singular, item_schema, edge=edge, depth=depth + 1)
            if v not in out:
                out.append(v)
            if len(out) == n:
                break
        return out
    if typ == "object":
        props = schema.get("properties") or {}
        if not props or depth > 2:
            return {rng.choice(GENERIC_WORDS): rng.choice(GENERIC_WORDS)}
        required = set(schema.get("required", []))
        return {
            k: sample_value(rng, k, v if isinstance(v, dict) else {}, edge=edge, depth=depth + 1)
            for k, v in props.items()
            if k in required or rng.random() < 0.5
        }
    return _sample_string(rng, words, text, schema, edge)


# words that make a string a person's name ("author", "player_name")
PERSON_KEYS = (
    *("person", "author", "artist", "player", "user", "username", "owner", "customer", "recipient"),
    *("director", "actor"),
)
# a "<thing>_name" is a person's name, not a thing's, when one of these is in it
_PERSON_WORDS = {
    *PERSON_KEYS,
    *("celebrity", "athlete", "lawyer", "scientist", "employee", "student", "manager"),
}
_NAME_FILLER = {"name", "full", "first", "last", "the", "a", "an", "of", "for", "to", "in", "is", "which"}


def _named_thing(words: set[str]) -> str | None:
    """``museum`` for ``museum_name`` / "the name of the museum"; None when the name is a person's
    or the thing is unclear."""
    if "name" not in words or words & _PERSON_WORDS:
        return None
    things = [w for w in words - _NAME_FILLER if len(w) > 2 and w.isalpha()]
    return things[0] if len(things) == 1 else None


def _singular(name: str) -> str:
    """``companies`` -> ``company``, ``indexes`` -> ``index``, ``items`` -> ``item``."""
    if name.endswith("ies"):
        return name[:-3] + "y"
    if re.search(r"(x|ss|sh|ch)es$", name):
        return name[:-2]
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _bounds(schema: dict[str, Any], lo: float, hi: float) -> tuple[float, float]:
    if "minimum" in schema:
        lo = max(lo, float(schema["minimum"])) if float(schema["minimum"]) <= hi else float(schema["minimum"])
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        lo = max(lo, float(schema["exclusiveMinimum"]) + 1)
    if "maximum" in schema:
        hi = min(hi, float(schema["maximum"]))
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        hi = min(hi, float(schema["exclusiveMaximum"]) - 1)
    if hi < lo:
        hi = lo
    return lo, hi


def _int_range(words: set[str], text: str) -> tuple[int, int]:
    if "years" in words:
        return 1, 30
    if "year" in words and "per" not in words:
        return 1950, 2024
    if _has(words, text, "port"):
        return 1024, 9000
    if _has(words, text, "line", "start", "end", "offset"):
        return 1, 400
    if _has(words, text, "age"):
        return 5, 90
    if _has(words, text, "month"):
        return 1, 12
    if _has(words, text, "day", "days"):
        return 1, 30
    if _has(words, text, "timeout", "seconds", "duration", "minutes"):
        return 5, 300
    if _has(words, text, "percent", "percentage", "rate", "score"):
        return 1, 100
    if _has(
        words, text, "limit", "max", "count", "num", "number", "top", "k", "n", "results", "size", "page"
    ):
        return 1, 50
    if _has(words, text, "amount", "price", "cost", "salary", "income", "principal", "budget", "population"):
        return 100, 50000
    return 1, 100


def _sample_int(
    rng: random.Random, words: set[str], text: str, schema: dict[str, Any], edge: bool, kind: str | None
) -> int:
    desc_words = set(re.findall(r"[a-z]+", str(schema.get("description", "")).lower()))
    if kind in ("money", "big_count") and not edge and rng.random() < 0.4:
        big = _round_big(rng, *_bounds(schema, 1000, 1e9))
        if big is not None:
            return big
    rng_ = _int_range(words, text)
    if rng_ == (1, 100):
        rng_ = _int_range(desc_words, text)
    lo, hi = _bounds(schema, *rng_)
    if edge and rng.random() < 0.4:
        for candidate in (0, -rng.randint(1, 20), int(hi) * 10):
            if (
                ("minimum" not in schema or candidate >= schema["minimum"])
                and ("maximum" not in schema or candidate <= schema["maximum"])
                and not (candidate < 0 and _has(words, text, "count", "limit", "age", "year", "line", "size"))
            ):
                return candidate
    return rng.randint(int(lo), int(hi))


def _sample_float(
    rng: random.Random, words: set[str], text: str, schema: dict[str, Any], edge: bool, kind: str | None
) -> float:
    if kind == "decimal_rate" and not edge:
        lo, hi = _bounds(schema, 0.01, 0.15)
        v = rng.choice([rng.randint(1, 15) / 100, rng.randint(3, 29) / 200])  # 0.05 ("5%"), 0.035
        if lo <= v <= hi:
            return v
    if _has(words, text, "probability", "ratio", "fraction"):
        lo, hi = 0.01, 0.99
    elif _has(words, text, "rate", "interest"):
        lo, hi = 0.5, 12.0
    elif _has(words, text, "temperature") and _has(words, text, "sampling", "llm", "model"):
        lo, hi = 0.1, 1.5
    elif _has(words, text, "latitude", "lat"):
        lo, hi = -80.0, 80.0
    elif _has(words, text, "longitude", "lon", "lng"):
        lo, hi = -170.0, 170.0
    elif _has(words, text, "amount", "price", "cost", "principal", "salary", "investment"):
        lo, hi = 50.0, 20000.0
    else:
        lo, hi = 0.5, 100.0
    lo, hi = _bounds(schema, lo, hi)
    digits = rng.choice([1, 1, 2])
    for _ in range(10):
        v = round(rng.uniform(lo, hi), digits)
        if edge and rng.random() < 0.3 and "minimum" not in schema:
            v = -v
        if v != int(v) and lo <= v <= hi or (edge and v < 0):
            return v
    return round(lo + 0.5, 1)


_WHEN_WORDS = {"date", "time", "when", "datetime", "timestamp", "start", "end", "due", "deadline", "until"}


def _described_date(rng: random.Random, text: str, schema: dict[str, Any], *, bare: bool) -> str | None:
    """A date and a time in one string, shaped as the description writes it ("'YYYY-MM-DD HH:MM'
    (24-hour)", with seconds or a T, or "date and time"): a bare date or time would be a value the tool
    cannot take. With ``bare`` (the name decided nothing), a description naming YYYY-MM-DD gives a date."""
    shape = re.search(r"yyyy-mm-dd[ t]hh:mm(:ss)?", text)
    if schema.get("format") != "date-time" and (shape or "date and time" in text):
        sep = "T" if shape and shape[0][10] == "t" else " "
        date = _iso_day(rng)
        clock = f"{rng.randint(7, 21):02d}:{rng.choice(['00', '15', '30', '45'])}"
        return f"{date}{sep}{clock}{':00' if shape and shape[1] else ''}"
    if bare and "yyyy-mm-dd" in text:
        return _iso_day(rng)
    return None


def _iso_day(rng: random.Random) -> str:
    return f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _sample_string(rng: random.Random, words: set[str], text: str, schema: dict[str, Any], edge: bool) -> str:
    """Name words decide first ("path" beats a description mentioning "city"), then the description's
    own example values ("e.g., 'C', 'F#'"), then description words. Examples also stand in for a
    name-word value now and then: they are the schema author's word on what a value looks like."""
    desc_words = set(re.findall(r"[a-z]+", str(schema.get("description", "")).lower()))
    examples = description_examples(str(schema.get("description", "")))
    v = _string_by_keys(rng, words, text, schema, edge)
    if v is None or words & _WHEN_WORDS:  # the name decides, unless it says nothing or a date or time
        v = _described_date(rng, text, schema, bare=v is None) or v
    if examples and rng.random() < (0.3 if v is not None else 0.9):
        return rng.choice(examples)
    if v is not None:
        return v
    v = _string_by_keys(rng, desc_words, text, schema, edge)
    if v is not None:
        return v
    base = rng.choice(GENERIC_WORDS)
    return f"{base} {rng.choice(GENERIC_WORDS)}" if edge else base


# words that make a string parameter a place ("start_location", "destination", "city")
PLACE_KEYS = ("city", "location", "place", "destination", "origin", "town")


def _asks_full_place(words: set[str], text: str) -> bool:
    """The description shows a comma form ("e.g. Boston, MA") or the name/description says "state"."""
    return bool(re.search(r"\b(e\.g\.|such as|like|format)[^.]*,", text)) or _has(words, text, "state")


def asks_full_place(name: str, schema: dict[str, Any]) -> bool:
    """A place parameter whose schema wants "City, ST" / "City, Country", not the bare city."""
    words = set(words_of(name))
    text = " ".join(words_of(name)) + " " + str(schema.get("description", "")).lower()
    return _has(words, text, *PLACE_KEYS) and _asks_full_place(words, text)


def _string_by_keys(
    rng: random.Random, words: set[str], text: str, schema: dict[str, Any], edge: bool
) -> str | None:
    fmt = schema.get("format", "")
    if fmt == "date" or _has(words, text, "date"):
        return f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "date-time" or _has(words, text, "datetime", "timestamp"):
        day = f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"{day}T{rng.randint(0, 23):02d}:00:00"
    if fmt == "email" or _has(words, text, "email"):
        return f"{rng.choice(FIRST_NAMES).lower()}@{rng.choice(['example.com', 'acme.io', 'mail.org'])}"
    if fmt in ("uri", "url") or _has(words, text, "url", "uri", "link", "endpoint", "website"):
        host = rng.choice(["example.com", "api.acme.io", "docs.python.org", "github.com/acme/widgets"])
        return f"https://{host}/{rng.choice(['v1/items', 'status', 'guide/intro', 'issues/42', 'search'])}"
    all_words = words | set(re.findall(r"[a-z]+", text))
    music = {"music", "musical", "melody", "chord", "scale"}
    if _has(words, text, "key", "note", "root") and all_words & music:
        return rng.choice(MUSIC_KEYS)
    if _has(words, text, "index", "indexes", "indices") and all_words & {"stock", "market", "performance"}:
        return rng.choice(STOCK_INDEXES)
    if _has(words, text, "season"):
        y = rng.randint(2015, 2024)
        return rng.choice([f"{y}-{y + 1}", f"{y}-{str(y + 1)[2:]}", str(y)])
    if _has(words, text, "month"):
        return rng.choice(MONTHS)
    if _has(words, text, "weekday") or (_has(words, text, "day") and "week" in text):
        return rng.choice(WEEKDAYS)
    if _has(words, text, "gender", "sex"):
        return rng.choice(["men", "women", "male", "female"])
    if _has(words, text, "sport", "sports"):
        return rng.choice(SPORTS)
    if _has(words, text, "ingredient", "ingredients"):
        return rng.choice(INGREDIENTS)
    if _has(words, text, "substance", "gas", "compound"):
        return rng.choice(SUBSTANCES)
    if _has(words, text, "discovery", "invention", "theory"):
        return rng.choice(DISCOVERIES)
    if _has(words, text, "metal"):
        return rng.choice(METALS)
    if _has(words, text, "glob"):
        return rng.choice(["*.py", "*.md", "src/**/*.ts", "test_*.py", "*.yaml"])
    if _has(words, text, "directory", "dir", "folder") and not _has(words, text, "file"):
        return rng.choice(CODE_DIRS + (["My Documents/projects"] if edge else []))
    if _has(words, text, "path", "file", "filename", "filepath"):
        if edge and rng.random() < 0.5:
            return f"{rng.choice(CODE_DIRS)}/{rng.choice(SPACED_FILES)}"
        return f"{rng.choice(CODE_DIRS)}/{rng.choice(CODE_FILES)}"
    if _has(words, text, "pattern", "regex", "query", "keyword", "search", "term"):
        return rng.choice(SEARCH_TERMS + (["error: file not found"] if edge else []))
    if _has(words, text, "command", "program", "executable"):
        return rng.choice(COMMANDS)
    if _has(words, text, "unit", "units"):
        if _has(words, text, "temperature"):
            return rng.choice(UNITS_TEMP)
        if _has(words, text, "weight", "mass"):
            return rng.choice(UNITS_MASS)
        return rng.choice(UNITS_LENGTH if _has(words, text, "distance", "length") else UNITS_GENERIC)
    if _has(words, text, *PLACE_KEYS):
        # the schema asks for "City, ST"; otherwise a request may still give a "location" in full form, kept
        # whole (never a "city" parameter, which often has a state or country parameter beside it)
        loose = words & {"location", "place", "destination", "origin"} and not words & {"city", "town"}
        if _asks_full_place(words, text) or (loose and rng.random() < 0.15):
            return rng.choice(list(CITY_FULL.values()))
        return rng.choice(CITIES)
    if _has(words, text, "country", "nation"):
        return rng.choice(COUNTRIES)
    if _has(words, text, "state", "province", "region"):
        return rng.choice(STATES)
    if _has(words, text, "currency"):
        return rng.choice(CURRENCIES)
    if _has(words, text, "ticker", "symbol", "stock"):
        return rng.choice(TICKERS)
    if _has(words, text, "language") and _has(words, text, "programming", "code", "source"):
        return rng.choice(LANGUAGES)
    if _has(words, text, "language", "lang"):
        return rng.choice(HUMAN_LANGUAGES)
    if _has(words, text, "company", "organization", "brand", "employer"):
        return rng.choice(COMPANIES)
    if _has(words, text, "team", "club"):
        return rng.choice(TEAMS)
    thing = _named_thing(words)
    if thing is not None:  # "museum_name": a museum's name, not a person's
        return f"{rng.choice(GENERIC_WORDS).title()} {thing.title()}"
    if _has(words, text, "name", *PERSON_KEYS):
        person = rng.choice(PEOPLE)
        if rng.random() < 0.15:  # "Dr. Chen": the title is part of the value
            return f"{rng.choice(['Dr.', 'Mr.', 'Ms.', 'Prof.'])} {person.split()[-1]}"
        return person
    if _has(words, text, "color", "colour"):
        return rng.choice(COLORS)
    if _has(words, text, "genre", "category"):
        return rng.choice(GENRES)
    if _has(words, text, "cuisine", "food", "dish", "recipe"):
        return rng.choice(FOODS)
    if _has(words, text, "species", "animal"):
        return rng.choice(SPECIES)
    if _has(words, text, "product", "item"):
        return rng.choice(PRODUCTS)
    if _has(words, text, "function", "equation", "expression", "formula", "polynomial"):
        return rng.choice(EXPRESSIONS)
    if _has(words, text, "time") and not _has(words, text, "zone", "timezone"):
        return f"{rng.randint(7, 21):02d}:{rng.choice(['00', '15', '30', '45'])}"
    if _has(words, text, "timezone", "zone"):
        return rng.choice(["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"])
    if _has(words, text, "id", "identifier", "code", "number") and not _has(words, text, "phone"):
        return f"{rng.choice(['ORD', 'INV', 'USR', 'TKT'])}-{rng.randint(1000, 99999)}"
    if _has(words, text, "content", "text", "message", "body", "note", "comment", "description", "sentence"):
        return rng.choice(SENTENCES)
    if _has(words, text, "topic", "subject", "title", "event", "book", "movie", "song"):
        return rng.choice(TOPICS)
    return None
