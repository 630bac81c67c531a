//! Domain-control validation methods (BR 3.2.2.4 / 3.2.2.5). Methods arrive one file each;
//! until a method is implemented here it answers a failed, not-completed check that says so,
//! never a pass.

use mpic_common::api::{
    CheckDetails, CheckResponse, CheckType, DcvCheckParameters, MpicError, error_type,
};
use mpic_common::target::Target;

/// Runs the DCV check `params` asks for against `target`.
pub async fn check(_target: &Target, params: &DcvCheckParameters) -> CheckResponse {
    let method = params.method();
    CheckResponse {
        check_type: CheckType::Dcv,
        check_completed: false,
        check_passed: false,
        errors: Some(vec![MpicError::new(
            error_type::DCV_NOT_IMPLEMENTED,
            format!(
                "validation method {} is not implemented by this perspective yet",
                method.as_str()
            ),
        )]),
        timestamp_ns: crate::now_ns(),
        details: CheckDetails::empty_for(method),
    }
}
