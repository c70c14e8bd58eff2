pub mod audit;
pub mod escrow;
pub mod health;
pub mod keys;
pub mod orders;
pub mod users;
pub mod webhooks;
pub mod withdrawals;
