"""Bodies for the topic list: the conversation topics phones offer (shared by all units)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.validation import Label

__all__ = ["TopicCode", "TopicCreate", "TopicRead", "TopicUpdate"]

# No commas: the one-statement logging path joins a record's codes with them.
TopicCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class TopicRead(BaseModel):
    code: str
    label: str
    active: bool


class TopicCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: TopicCode
    label: Label


class TopicUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    active: StrictBool | None = None
