# The demo producer: the real Python Celery 5 client and psycopg2 from Debian 12's packages
# (no pip, no network beyond the Debian mirror). The producer script and the test data are
# mounted from the repository's tests/ folder by docker-compose.yml.
FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-celery python3-psycopg2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
CMD ["python3", "tests/py/producer.py", "--help"]
