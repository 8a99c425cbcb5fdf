from rest_framework.pagination import CursorPagination, PageNumberPagination


class DefaultPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


class NewestFirstCursorPagination(CursorPagination):
    """For tables too large to COUNT(*): stable cursors, no total."""

    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 1000
