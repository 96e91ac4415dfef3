"""Reading the JSON files of a checkpoint directory with errors that name the file."""
import json

from .errors import FormatError


def read_json(path, what=None, error=FormatError, missing_ok=False, object_only=False):
    """The parsed file. A corrupt file raises `error` naming `what` (if given) and the path;
    a missing one raises FileNotFoundError, or returns None with missing_ok; object_only
    refuses anything but a JSON object."""
    where = f"{what}: '{path}'" if what else f"'{path}'"
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{where} is not valid JSON: {e}") from None
    if object_only and not isinstance(d, dict):
        raise error(f"{where} does not hold a JSON object")
    return d
