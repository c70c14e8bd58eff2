pub mod balances;
pub mod keys;
pub mod users;
