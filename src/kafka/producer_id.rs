//! InitProducerId for idempotent producers: a producer id that is never handed out twice (see
//! `Engine::init_producer_id`), epoch 0; on v3+ a producer that sends its current id and epoch
//! gets the same id with the epoch bumped (a new id once the epoch would overflow). A
//! transactional id is refused: tierlog has no transactions.

use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::dispatch::{Ctx, Reply};

pub(super) async fn handle(ctx: Ctx, req: InitProducerIdRequest) -> Reply {
    let mut resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        tracing::warn!("InitProducerId with a transactional id refused: tierlog has no transactions");
        resp.error_code = ctx.code(K::TransactionalIdAuthorizationFailed.code());
        return ctx.respond(&resp);
    }
    let current = (ctx.version >= 3 && req.producer_id.0 >= 0 && req.producer_epoch >= 0)
        .then_some((req.producer_id.0, req.producer_epoch));
    match current {
        Some((id, epoch)) if epoch < i16::MAX - 1 => {
            (resp.producer_id, resp.producer_epoch) = (ProducerId(id), epoch + 1);
        }
        _ => match ctx.broker.engine.init_producer_id().await {
            Ok(id) => (resp.producer_id, resp.producer_epoch) = (ProducerId(id), 0),
            Err(e) => {
                tracing::warn!(error = %e, "allocating a producer id failed");
                resp.error_code = ctx.code(K::CoordinatorNotAvailable.code());
            }
        },
    }
    ctx.respond(&resp)
}
