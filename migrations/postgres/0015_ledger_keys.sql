-- Fewer index entries per journal transaction (issue #15): indexes no query uses.
-- Upgrading builds the new keys and checks the postings' foreign key to the journal
-- again (each table is read about twice); meanwhile every ledger write, and reads of
-- postings and journal transactions (balance history, `ledger verify`), wait: seconds
-- per million postings.
--
-- Journal transactions are looked up by id (the postings' foreign key, the ledger's
-- reads) and by (kind, reference) (idempotent recording), never by `seq`: the id
-- becomes the primary key, and `seq` (still assigned from its sequence, in creation
-- order) loses its index.
ALTER TABLE postings DROP CONSTRAINT postings_transaction_id_fkey;
ALTER TABLE journal_transactions DROP CONSTRAINT journal_transactions_id_key;
ALTER TABLE journal_transactions DROP CONSTRAINT journal_transactions_pkey;
ALTER TABLE journal_transactions ADD CONSTRAINT journal_transactions_pkey PRIMARY KEY (id);

-- Postings are read by account in `seq` order (`postings_account`) and grouped by
-- transaction (`ledger verify`), never looked up by `seq` alone: one key on
-- (transaction_id, seq) takes the place of the `seq` key and the `transaction_id`
-- index. `seq` values still come from their sequence (unique unless inserted by hand).
ALTER TABLE postings DROP CONSTRAINT postings_pkey;
ALTER TABLE postings ADD CONSTRAINT postings_pkey PRIMARY KEY (transaction_id, seq);
DROP INDEX postings_transaction;
ALTER TABLE postings ADD CONSTRAINT postings_transaction_id_fkey
    FOREIGN KEY (transaction_id) REFERENCES journal_transactions (id);
