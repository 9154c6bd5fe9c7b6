ARG BASE
FROM ${BASE:?BASE_is_required}
