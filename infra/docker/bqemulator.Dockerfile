# syntax=docker/dockerfile:1
# The BigQuery API emulator the tests use (PyPI's bqemulator, pinned as
# xtask/src/emulator.rs pins it; a test keeps both lists equal), for compose.yaml.
FROM python:3.11-slim
RUN pip install --no-cache-dir --disable-pip-version-check \
        bqemulator==1.4.0 duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy==2.4.6 \
    && useradd --uid 65532 --create-home emulator \
    && mkdir -p /home/emulator/.duckdb/extensions/v1.5.5/linux_amd64 \
    && cp "$(find / -name spatial.duckdb_extension -path '*site-packages*' | head -n 1)" \
        /home/emulator/.duckdb/extensions/v1.5.5/linux_amd64/ \
    && chown -R emulator /home/emulator/.duckdb \
    && mkdir /staging && chown emulator /staging
USER emulator
EXPOSE 9050 9060
ENTRYPOINT ["bqemulator", "start", "--ephemeral", "--project", "music-analytics", "--rest-port", "9050", "--grpc-port", "9060", "--rest-host", "0.0.0.0", "--grpc-host", "0.0.0.0"]
