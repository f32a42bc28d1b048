import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OnRunCompleted(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_RUN_COMPLETED_UNSPECIFIED: _ClassVar[OnRunCompleted]
    ON_RUN_COMPLETED_DELETE: _ClassVar[OnRunCompleted]
    ON_RUN_COMPLETED_KEEP: _ClassVar[OnRunCompleted]
ON_RUN_COMPLETED_UNSPECIFIED: OnRunCompleted
ON_RUN_COMPLETED_DELETE: OnRunCompleted
ON_RUN_COMPLETED_KEEP: OnRunCompleted

class Cron(_message.Message):
    __slots__ = ("cron_id", "assistant_id", "thread_id", "user_id", "schedule", "timezone", "end_time", "next_run_date", "payload", "metadata", "on_run_completed", "enabled", "created_at", "updated_at")
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_DATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ON_RUN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    cron_id: str
    assistant_id: str
    thread_id: str
    user_id: str
    schedule: str
    timezone: str
    end_time: _timestamp_pb2.Timestamp
    next_run_date: _timestamp_pb2.Timestamp
    payload: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    on_run_completed: OnRunCompleted
    enabled: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, cron_id: _Optional[str] = ..., assistant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., user_id: _Optional[str] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_run_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., on_run_completed: _Optional[_Union[OnRunCompleted, str]] = ..., enabled: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCronRequest(_message.Message):
    __slots__ = ("thread_id", "schedule", "timezone", "end_time", "enabled", "on_run_completed", "metadata", "payload")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ON_RUN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    schedule: str
    timezone: str
    end_time: _timestamp_pb2.Timestamp
    enabled: bool
    on_run_completed: OnRunCompleted
    metadata: _struct_pb2.Struct
    payload: _struct_pb2.Struct
    def __init__(self, thread_id: _Optional[str] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., enabled: _Optional[bool] = ..., on_run_completed: _Optional[_Union[OnRunCompleted, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetCronRequest(_message.Message):
    __slots__ = ("cron_id",)
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    cron_id: str
    def __init__(self, cron_id: _Optional[str] = ...) -> None: ...

class UpdateCronRequest(_message.Message):
    __slots__ = ("cron_id", "schedule", "timezone", "end_time", "clear_end_time", "enabled", "on_run_completed", "metadata", "payload")
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CLEAR_END_TIME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ON_RUN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    cron_id: str
    schedule: str
    timezone: str
    end_time: _timestamp_pb2.Timestamp
    clear_end_time: bool
    enabled: bool
    on_run_completed: OnRunCompleted
    metadata: _struct_pb2.Struct
    payload: _struct_pb2.Struct
    def __init__(self, cron_id: _Optional[str] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clear_end_time: _Optional[bool] = ..., enabled: _Optional[bool] = ..., on_run_completed: _Optional[_Union[OnRunCompleted, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeleteCronRequest(_message.Message):
    __slots__ = ("cron_id",)
    CRON_ID_FIELD_NUMBER: _ClassVar[int]
    cron_id: str
    def __init__(self, cron_id: _Optional[str] = ...) -> None: ...

class DeleteCronResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SearchCronsRequest(_message.Message):
    __slots__ = ("assistant_id", "thread_id", "enabled", "metadata", "limit", "offset", "sort_by", "sort_order")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_ORDER_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    thread_id: str
    enabled: bool
    metadata: _struct_pb2.Struct
    limit: int
    offset: int
    sort_by: str
    sort_order: str
    def __init__(self, assistant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., enabled: _Optional[bool] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., sort_by: _Optional[str] = ..., sort_order: _Optional[str] = ...) -> None: ...

class SearchCronsResponse(_message.Message):
    __slots__ = ("crons",)
    CRONS_FIELD_NUMBER: _ClassVar[int]
    crons: _containers.RepeatedCompositeFieldContainer[Cron]
    def __init__(self, crons: _Optional[_Iterable[_Union[Cron, _Mapping]]] = ...) -> None: ...

class CountCronsRequest(_message.Message):
    __slots__ = ("assistant_id", "thread_id", "metadata")
    ASSISTANT_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    assistant_id: str
    thread_id: str
    metadata: _struct_pb2.Struct
    def __init__(self, assistant_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CountCronsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...
