"""Where the HTTP API's bodies live (issue 12): every request body in controller/api/schemas.py, every
response body in controller/api/responses.py (or a ``responses_<area>.py`` beside it, e.g. the fleet's:
one file of every body would pass the 400-line bar), nowhere else in controller/api/.

A request body refuses unknown keys (it derives from ``schemas.Strict``); a response body does not
(it is what the controller writes, extra figures included).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from pydantic import BaseModel

import controller.api
from controller.api.schemas import Strict


def _models() -> list[tuple[str, type[BaseModel]]]:
    found = []
    for info in pkgutil.iter_modules(controller.api.__path__):
        module = importlib.import_module(f"controller.api.{info.name}")
        found += [(info.name, obj) for obj in vars(module).values()
                  if inspect.isclass(obj) and issubclass(obj, BaseModel)
                  and obj.__module__ == module.__name__]
    return found


def _responses(module: str) -> bool:
    return module == "responses" or module.startswith("responses_")


def test_request_bodies_in_schemas_response_bodies_in_responses() -> None:
    models = _models()
    assert {"schemas", "responses"} <= {where for where, _ in models}
    offenders = [f"controller/api/{where}.py: {m.__name__}" for where, m in models
                 if where != "schemas" and not _responses(where)]
    offenders += [f"controller/api/schemas.py: {m.__name__} is not Strict (a request body refuses "
                  "unknown keys)" for where, m in models if where == "schemas" and not issubclass(m, Strict)]
    offenders += [f"controller/api/responses.py: {m.__name__} is Strict (a request body?)"
                  for where, m in models if _responses(where) and issubclass(m, Strict)]
    assert not offenders, "\n".join(offenders)
