from rest_framework.parsers import BaseParser


class CSVParser(BaseParser):
    """CSV bodies are handed to the service as raw bytes; the service parses them in bulk."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


class AppCSVParser(CSVParser):
    media_type = "application/csv"
