"""The edit operations: ids, parameters (validated and made canonical), kind and cost."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xintu.config import Settings
from xintu.errors import AppError


class UnknownOperation(AppError):
    status_code = 422
    code = "unknown_operation"
    detail = "No such edit operation; see GET /api/v1/edit/operations"


class InvalidParams(AppError):
    status_code = 422
    code = "invalid_params"
    detail = "The params of this operation are not valid"


class OperationKind(StrEnum):
    local = "local"
    remote = "remote"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    pass


class EnhanceParams(_Params):
    strength: float = Field(0.6, ge=0.0, le=1.0, description="0 = unchanged, 1 = strongest")


class CartoonParams(_Params):
    levels: int = Field(8, ge=2, le=32, description="colour levels per channel")


class SketchParams(_Params):
    blur: float = Field(10.0, ge=1.0, le=50.0, description="softness of the pencil shading")


class IdPhotoParams(_Params):
    size: Literal["1inch", "2inch"] = Field("1inch", description="1inch 295x413, 2inch 413x579")


class PromptEditParams(_Params):
    prompt: str = Field(min_length=1, max_length=800, description="what to change")


class RestyleParams(_Params):
    style: Literal["watercolor", "oil_painting", "anime", "ink_wash"] = "watercolor"


ID_PHOTO_SIZES: dict[str, tuple[int, int]] = {"1inch": (295, 413), "2inch": (413, 579)}

_STYLE_PROMPTS = {
    "watercolor": "Repaint this photo as a soft watercolor painting; keep the composition.",
    "oil_painting": "Repaint this photo as a classical oil painting; keep the composition.",
    "anime": "Redraw this photo in a clean anime illustration style; keep the people and pose.",
    "ink_wash": "Repaint this photo as a Chinese ink wash painting; keep the composition.",
}


@dataclass(frozen=True, slots=True)
class Operation:
    id: str
    name: str
    description: str
    kind: OperationKind
    params: type[_Params]

    def cost(self, settings: Settings) -> int:
        return (
            settings.edit_local_cost
            if self.kind is OperationKind.local
            else (settings.edit_remote_cost)
        )


OPERATIONS: dict[str, Operation] = {
    op.id: op
    for op in (
        Operation(
            "enhance",
            "自动增强",
            "Auto contrast, colour and sharpness",
            OperationKind.local,
            EnhanceParams,
        ),
        Operation(
            "cartoon", "卡通化", "Flat colours with ink edges", OperationKind.local, CartoonParams
        ),
        Operation("sketch", "素描", "Pencil sketch", OperationKind.local, SketchParams),
        Operation(
            "id_photo",
            "证件照",
            "Face-centred ID photo crop (1 or 2 inch)",
            OperationKind.local,
            IdPhotoParams,
        ),
        Operation(
            "prompt_edit",
            "指令修图",
            "Edit the photo as the prompt says (remote model)",
            OperationKind.remote,
            PromptEditParams,
        ),
        Operation(
            "restyle",
            "风格重绘",
            "Repaint the photo in an art style (remote model)",
            OperationKind.remote,
            RestyleParams,
        ),
    )
}


def get_operation(operation_id: str) -> Operation:
    operation = OPERATIONS.get(operation_id)
    if operation is None:
        raise UnknownOperation(f"Unknown operation {operation_id!r}; one of {sorted(OPERATIONS)}")
    return operation


def parse_params(operation: Operation, raw: str | None) -> dict[str, Any]:
    """The params with defaults filled in, or 422 ``invalid_params``."""
    try:
        value = orjson.loads(raw) if raw and raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidParams("params must be a JSON object") from exc
    if not isinstance(value, dict):
        raise InvalidParams("params must be a JSON object")
    try:
        return operation.params.model_validate(value).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidParams(f"Invalid params for {operation.id}: {problems}") from exc


def canonical_params(params: dict[str, Any]) -> str:
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()


def edit_cache_key(image_sha256: str, operation_id: str, params: dict[str, Any]) -> str:
    """SHA-256 of image + operation + canonical params."""
    material = f"{image_sha256}\n{operation_id}\n{canonical_params(params)}"
    return hashlib.sha256(material.encode()).hexdigest()


def remote_prompt(operation_id: str, params: dict[str, Any]) -> str:
    if operation_id == "prompt_edit":
        return str(params["prompt"])
    if operation_id == "restyle":
        return _STYLE_PROMPTS[str(params["style"])]
    raise ValueError(f"{operation_id} is not a remote operation")


def params_schema(operation: Operation) -> list[dict[str, Any]]:
    """Each parameter as ``{"name", "type", "required", "default"?, "enum"?, bounds…}``."""
    schema = operation.params.model_json_schema()
    required = set(schema.get("required", []))
    described = []
    for name, spec in schema.get("properties", {}).items():
        entry: dict[str, Any] = {"name": name, "required": name in required}
        entry.update({key: value for key, value in spec.items() if key != "title"})
        described.append(entry)
    return described
