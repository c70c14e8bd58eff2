pub mod balances;
pub mod deposits;
pub mod idempotency;
pub mod keys;
pub mod orders;
pub mod users;
pub mod wallets;
pub mod webhooks;
