-- An amq local store of schema version 1, as amq 0.1.0 wrote it (sqlite3 iterdump):
-- queues jobs (durable, max-length 100) and empty, exchange events (topic) bound to
-- jobs with job.#, three messages in jobs. tests/unit/test_store_migrations.py opens it.
BEGIN TRANSACTION;
CREATE TABLE bindings (
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    destination_type TEXT NOT NULL,     -- 'queue' or 'exchange'
    routing_key TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (source, destination_type, destination, routing_key, arguments)
);
INSERT INTO "bindings" VALUES('events','jobs','queue','job.#','{}');
CREATE TABLE connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,                -- process start time, to tell a reused pid
    name TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE consumers (
    connection INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    tag TEXT NOT NULL,
    queue TEXT NOT NULL,
    exclusive INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (connection, channel, tag)
);
CREATE TABLE exchanges (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    durable INTEGER NOT NULL DEFAULT 0,
    auto_delete INTEGER NOT NULL DEFAULT 0,
    internal INTEGER NOT NULL DEFAULT 0,
    arguments TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO "exchanges" VALUES('','direct',1,0,0,'{}');
INSERT INTO "exchanges" VALUES('amq.direct','direct',1,0,0,'{}');
INSERT INTO "exchanges" VALUES('amq.fanout','fanout',1,0,0,'{}');
INSERT INTO "exchanges" VALUES('amq.topic','topic',1,0,0,'{}');
INSERT INTO "exchanges" VALUES('amq.headers','headers',1,0,0,'{}');
INSERT INTO "exchanges" VALUES('amq.match','headers',1,0,0,'{}');
INSERT INTO "exchanges" VALUES('events','topic',1,0,0,'{}');
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,              -- FIFO order, from meta.next_message_id
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    owner INTEGER,                        -- connections.id holding it unacked, NULL when ready
                                          -- (not indexed: claims and acks name rows by id)
    redelivered INTEGER NOT NULL DEFAULT 0,
    expires REAL,                         -- epoch seconds, from TTLs
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    properties TEXT,                      -- JSON (codec.py), NULL when none are set
    body BLOB NOT NULL
);
INSERT INTO "messages" VALUES(1,'jobs',0,NULL,0,NULL,'events','job.created','{"headers":{"attempt":1},"correlation_id":"c-1"}',X'6669727374');
INSERT INTO "messages" VALUES(2,'jobs',0,NULL,0,NULL,'','jobs',NULL,X'74776F');
INSERT INTO "messages" VALUES(3,'jobs',0,NULL,0,NULL,'','jobs',NULL,X'7468726565');
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value
);
INSERT INTO "meta" VALUES('next_message_id',4);
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    durable INTEGER NOT NULL DEFAULT 0,
    exclusive_owner INTEGER,            -- connections.id, for exclusive queues
    auto_delete INTEGER NOT NULL DEFAULT 0,
    arguments TEXT NOT NULL DEFAULT '{}',
    had_consumer INTEGER NOT NULL DEFAULT 0,
    unacked INTEGER NOT NULL DEFAULT 0,   -- its messages held by consumers (owner set)
    expiring INTEGER NOT NULL DEFAULT 0,  -- it has held messages with an expiry time
    last_used REAL NOT NULL DEFAULT 0   -- for x-expires
);
INSERT INTO "queues" VALUES('jobs',1,NULL,0,'{"x-max-length":100}',0,0,0,1.79611905076713514323e+09);
INSERT INTO "queues" VALUES('empty',0,NULL,0,'{}',0,0,0,1.79611905374946379662e+09);
CREATE INDEX bindings_destination ON bindings (destination_type, destination);
CREATE INDEX messages_ready ON messages (queue, priority DESC, id)
    WHERE owner IS NULL;
CREATE INDEX consumers_queue ON consumers (queue);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('connections',7);
COMMIT;
PRAGMA user_version = 1;
