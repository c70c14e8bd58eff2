//! The three wallets of an escrow (buyer, seller, platform) and their addresses.

use super::*;

/// The three wallets an escrow involves.
pub struct Parties {
    pub buyer: Wallet,
    pub seller: Wallet,
    pub platform: Wallet,
}

impl Parties {
    /// Loads the wallets; 422 `WALLET_NOT_READY` unless all three are `ACTIVE`.
    pub async fn load(store: &Store, order: &Order) -> Result<Parties> {
        let platform = wallets::platform(store).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::WalletNotReady,
                "The platform wallet does not exist yet",
            )
        })?;
        let buyer = wallets::for_user(store, &order.buyer_id).await?;
        let seller = wallets::for_user(store, &order.seller_id).await?;
        for (who, w) in [
            ("buyer", &buyer),
            ("seller", &seller),
            ("platform", &platform),
        ] {
            if w.status != WalletStatus::Active {
                return Err(Error::new(
                    ErrorCode::WalletNotReady,
                    format!("The {who}'s wallet is {} (it must be ACTIVE)", w.status),
                )
                .with_details(json!({ "party": who, "walletId": w.id, "status": w.status })));
            }
        }
        Ok(Parties {
            buyer,
            seller,
            platform,
        })
    }

    pub fn wallet(&self, p: Party) -> &Wallet {
        match p {
            Party::Buyer => &self.buyer,
            Party::Seller => &self.seller,
            Party::Platform => &self.platform,
        }
    }

    pub fn address(&self, p: Party) -> &str {
        &self.wallet(p).public_key
    }
}
