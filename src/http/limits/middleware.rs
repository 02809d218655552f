//! The request gate, wrapped around every route inside `observe` (so refusals are logged and
//! counted like any response): pressure shedding first, then the global limiter, then the
//! per-IP limiter.
//!
//! One [`LimitsService`] exists per HTTP worker (actix builds the middleware stack in each
//! worker's factory), which is where the worker's [`WorkerPressure`] lives. A request that no
//! enabled limiter applies to goes through an unboxed pass-through future and allocates nothing.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use futures_util::future::{Either, LocalBoxFuture};

use super::Limits;
use super::pressure::{self, Ticket, WorkerPressure};
use super::store::RateInfo;

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Writes the IETF draft `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
/// (seconds, rounded up) headers for `info`.
pub fn insert_rate_headers(headers: &mut HeaderMap, info: RateInfo) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(info.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(info.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(super::whole_seconds_up(info.reset_after)),
    );
}

/// `App::wrap` factory for the gate; see the module docs.
pub struct LimitsMiddleware {
    limits: Arc<Limits>,
    /// The worker's pool, whose waits count as pressure.
    pool: Option<sqlx::PgPool>,
}

impl LimitsMiddleware {
    pub fn new(limits: Arc<Limits>, pool: Option<sqlx::PgPool>) -> LimitsMiddleware {
        LimitsMiddleware { limits, pool }
    }
}

// `S::Future: Unpin` holds for everything we wrap (actix's router answers with boxed futures);
// it lets the pass-through future poll the inner one without boxing or pin projection.
impl<S, B> Transform<S, ServiceRequest> for LimitsMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: Unpin,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = LimitsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // This runs once per worker, on the worker's thread: the right place for its gauges.
        let pool = self.pool.clone();
        let pressure = self
            .limits
            .pressure()
            .map(|config| WorkerPressure::start(config, pool));
        ready(Ok(LimitsService {
            service: Rc::new(service),
            limits: self.limits.clone(),
            pressure,
        }))
    }
}

/// The gate of one worker.
pub struct LimitsService<S> {
    service: Rc<S>,
    limits: Arc<Limits>,
    pressure: Option<Rc<WorkerPressure>>,
}

type Answer<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for LimitsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: Unpin,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future =
        Either<PassThrough<S::Future>, Either<Ready<Answer<B>>, LocalBoxFuture<'static, Answer<B>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let ticket = match &self.pressure {
            Some(worker) if !pressure::is_exempt(req.path()) => match worker.admit() {
                Ok(ticket) => Some(ticket),
                Err(err) => {
                    let shed = req.error_response(err).map_into_right_body();
                    return Either::Right(Either::Left(ready(Ok(shed))));
                }
            },
            _ => None,
        };
        if !self.limits.limits_requests() {
            return Either::Left(PassThrough {
                inner: self.service.call(req),
                ticket,
            });
        }
        let service = self.service.clone();
        let limits = self.limits.clone();
        Either::Right(Either::Right(Box::pin(async move {
            let ip = limits.client_ip(req.head());
            match limits.check_request(ip).await {
                Ok(info) => {
                    let mut res = service.call(req).await?;
                    if let Some(info) = info {
                        insert_rate_headers(res.headers_mut(), info);
                    }
                    drop(ticket);
                    Ok(res.map_into_left_body())
                }
                Err(limited) => {
                    let mut res = req.error_response(limited.error());
                    insert_rate_headers(res.headers_mut(), limited.info);
                    Ok(res.map_into_right_body())
                }
            }
        })))
    }
}

/// The inner service's future, plus the request's in-flight [`Ticket`], released as soon as the
/// response is ready.
pub struct PassThrough<F> {
    inner: F,
    ticket: Option<Ticket>,
}

impl<F, B> Future for PassThrough<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + Unpin,
{
    type Output = Answer<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let res = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        this.ticket = None;
        Poll::Ready(res.map(ServiceResponse::map_into_left_body))
    }
}
