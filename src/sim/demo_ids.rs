//! The fixed tokens and UUIDs of the demo data set (re-exported by [`super::demo`], where the
//! picture they belong to is described).

/// The demo service provider's API token (40 hex digits, like a DRF token).
pub const TOKEN: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
/// The second service provider's token.
pub const OTHER_SP_TOKEN: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

pub const SERVICE_PROVIDER_UUID: &str = "5e0000000000400080000000000000a1";
pub const SP_CUSTOMER_UUID: &str = "c0000000000040008000000000000001";
pub const SP_OWNER_USER_UUID: &str = "a0000000000040008000000000000001";
pub const LUMI_OFFERING_UUID: &str = "0f000000000040008000000000000001";
pub const LUMI_PLAN_UUID: &str = "91000000000040008000000000000001";
pub const SECOND_OFFERING_UUID: &str = "0f000000000040008000000000000002";
pub const SECOND_PLAN_UUID: &str = "91000000000040008000000000000002";

pub const OTHER_SP_UUID: &str = "5e0000000000400080000000000000b2";
pub const OTHER_SP_CUSTOMER_UUID: &str = "c0000000000040008000000000000002";
pub const OTHER_SP_OWNER_USER_UUID: &str = "a0000000000040008000000000000002";
pub const OTHER_OFFERING_UUID: &str = "0f000000000040008000000000000003";
pub const OTHER_PLAN_UUID: &str = "91000000000040008000000000000003";

pub const CONSUMER_CUSTOMER_UUID: &str = "c0000000000040008000000000000003";
pub const CONSUMER2_CUSTOMER_UUID: &str = "c0000000000040008000000000000004";
/// Project "Climate modelling" (consumer organisation 1).
pub const PROJECT_A_UUID: &str = "b0000000000040008000000000000001";
/// Project "Protein folding" (consumer organisation 2).
pub const PROJECT_B_UUID: &str = "b0000000000040008000000000000002";
/// Project of the other service provider's client only.
pub const PROJECT_OTHER_UUID: &str = "b0000000000040008000000000000003";
/// A project of the demo SP's own organisation (its token can order there without consumer review).
pub const PROJECT_SP_UUID: &str = "b0000000000040008000000000000004";
/// A client project (organisation 2) where the demo SP's token user is only a PROJECT.MEMBER:
/// its orders there start in pending-consumer. It has no resources.
pub const PROJECT_CONSUMER_UUID: &str = "b0000000000040008000000000000005";

/// Alice: PROJECT.MANAGER of project A; has an offering user on LUMI (`alice_lumi`).
pub const USER_ALICE_UUID: &str = "a0000000000040008000000000000011";
/// Bob: PROJECT.MEMBER of projects A and B; no offering user yet.
pub const USER_BOB_UUID: &str = "a0000000000040008000000000000012";
/// Carol: PROJECT.ADMIN of project B.
pub const USER_CAROL_UUID: &str = "a0000000000040008000000000000013";
/// Dave: member of the other SP's project only.
pub const USER_DAVE_UUID: &str = "a0000000000040008000000000000014";

pub const KEY_ALICE_UUID: &str = "e0000000000040008000000000000011";
pub const KEY_BOB_UUID: &str = "e0000000000040008000000000000012";
pub const KEY_CAROL_UUID: &str = "e0000000000040008000000000000013";
pub const KEY_DAVE_UUID: &str = "e0000000000040008000000000000014";
pub const KEY_SP_OWNER_UUID: &str = "e0000000000040008000000000000001";

pub const RESOURCE_OK_UUID: &str = "7e000000000040008000000000000001";
pub const RESOURCE_CREATING_UUID: &str = "7e000000000040008000000000000002";
pub const RESOURCE_PROVISIONING_UUID: &str = "7e000000000040008000000000000003";
pub const RESOURCE_ERRED_UUID: &str = "7e000000000040008000000000000004";
pub const RESOURCE_SLURM_UUID: &str = "7e000000000040008000000000000005";
pub const OTHER_RESOURCE_UUID: &str = "7e000000000040008000000000000009";

/// Create order of [`RESOURCE_OK_UUID`] (done).
pub const ORDER_OK_DONE_UUID: &str = "0d000000000040008000000000000001";
/// Create order of [`RESOURCE_CREATING_UUID`], pending-provider.
pub const ORDER_PENDING_UUID: &str = "0d000000000040008000000000000002";
/// Create order of [`RESOURCE_PROVISIONING_UUID`], executing.
pub const ORDER_EXECUTING_UUID: &str = "0d000000000040008000000000000003";
/// Create order of [`RESOURCE_ERRED_UUID`] (erred).
pub const ORDER_ERRED_UUID: &str = "0d000000000040008000000000000004";
/// Create order of [`RESOURCE_SLURM_UUID`], executing (second offering, `Marketplace.Slurm`).
pub const ORDER_SLURM_EXECUTING_UUID: &str = "0d000000000040008000000000000005";
/// The other SP's pending-provider order.
pub const OTHER_ORDER_UUID: &str = "0d000000000040008000000000000009";

pub const OFFERING_USER_ALICE_UUID: &str = "0a000000000040008000000000000011";
/// Alice's offering user on the second offering, which does not allow the provider to create
/// offering users: Waldur does not list it.
pub const HIDDEN_OFFERING_USER_UUID: &str = "0a000000000040008000000000000015";
pub const OTHER_OFFERING_USER_UUID: &str = "0a000000000040008000000000000014";

pub const PLAN_PERIOD_OK_UUID: &str = "99000000000040008000000000000001";

/// LUMI usage component types.
pub const COMPONENTS: [&str; 3] = ["cpu_k_hours", "gpu_k_hours", "gb_k_hours"];

/// The demo resource allocator's API token (a consumer: it orders, it provides nothing).
pub const ALLOCATOR_TOKEN: &str = "a110ca7ea110ca7ea110ca7ea110ca7ea110ca7e";
/// The allocator's organisation ("National allocator (demo)"); its token user owns it.
pub const ALLOCATOR_CUSTOMER_UUID: &str = "c0000000000040008000000000000006";
/// A partner organisation where the allocator's token user is only a project member.
pub const ALLOCATOR_PARTNER_CUSTOMER_UUID: &str = "c0000000000040008000000000000007";
/// The allocator's token user (owner of [`ALLOCATOR_CUSTOMER_UUID`]).
pub const ALLOCATOR_USER_UUID: &str = "a0000000000040008000000000000021";
/// Project "National allocation 2027" of the allocator's organisation: its orders skip the
/// consumer review (the allocator's user owns the organisation) and wait for the provider.
pub const ALLOCATOR_PROJECT_UUID: &str = "b0000000000040008000000000000011";
/// Project "Partner allocation" of the partner organisation, where the allocator's user is a
/// PROJECT.MEMBER: its orders start in `pending-consumer`.
pub const ALLOCATOR_REVIEW_PROJECT_UUID: &str = "b0000000000040008000000000000012";
/// "LUMI allocations (demo)": a `Marketplace.Basic` offering of the other demo provider
/// ([`OTHER_SP_TOKEN`]: the provider reviews the allocator's orders on its own side) whose
/// components (`cpu_k_hours`, `gpu_k_hours`, `gb_k_hours`) are limit-type, as allocations are;
/// it publishes no order options (as LUMI in the guide: `"options": {}`).
pub const ALLOCATION_OFFERING_UUID: &str = "0f000000000040008000000000000004";
pub const ALLOCATION_PLAN_UUID: &str = "91000000000040008000000000000004";
/// The demo allocator's allocation: OK, in [`ALLOCATOR_REVIEW_PROJECT_UUID`], of
/// [`ALLOCATION_OFFERING_UUID`] (limits 100 / 5 / 10 k-hours), created by
/// [`ALLOCATOR_ORDER_DONE_UUID`].
pub const ALLOCATOR_RESOURCE_UUID: &str = "7e00000000004000800000000000000a";
pub const ALLOCATOR_ORDER_DONE_UUID: &str = "0d00000000004000800000000000000a";
/// Create orders of the demo allocator waiting for its review (`pending-consumer`), one each to
/// approve, reject and cancel; their resources are `Creating`.
pub const ALLOCATOR_ORDER_TO_APPROVE_UUID: &str = "0d00000000004000800000000000000b";
pub const ALLOCATOR_ORDER_TO_REJECT_UUID: &str = "0d00000000004000800000000000000c";
pub const ALLOCATOR_ORDER_TO_CANCEL_UUID: &str = "0d00000000004000800000000000000d";
