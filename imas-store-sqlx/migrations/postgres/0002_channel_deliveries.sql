-- Which notification went out through which channel (webhook, email...), so a
-- retry caused by one channel never sends again through another.
CREATE TABLE channel_deliveries (
    key     TEXT NOT NULL,
    channel TEXT NOT NULL,
    PRIMARY KEY (key, channel)
);
