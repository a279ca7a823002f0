//! The PAM entry points. `pam_hooks!` exports `pam_sm_authenticate` and
//! its siblings (`#[unsafe(no_mangle)] extern "C"`), checks the handle and
//! argv, and turns a panic into PAM_ABORT; everything here calls
//! `pam-bindings`' safe wrappers.
// SAFETY: the only unsafe code is what `pam_hooks!` generates: the exported
// symbols libpam calls with a valid handle and argv (Linux-PAM's module
// contract, pam_sm_authenticate(3)); the macro checks both for null.
#![allow(unsafe_code)]

use std::ffi::CStr;

use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_SILENT, PAM_TEXT_INFO, PamFlag, PamResultCode,
};
use pam::conv::Conv;
use pam::module::{PamHandle, PamHooks};
use rampart_shared::signin::PROMPT;

use crate::verdict::{Pam, Say, Verdict};
use crate::{agent, args, verdict};

struct Rampart;
pam::pam_hooks!(Rampart);

impl PamHooks for Rampart {
    fn sm_authenticate(pamh: &mut PamHandle, argv: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let silent = flags & PAM_SILENT != 0;
        let parsed = argv
            .iter()
            .map(|a| {
                a.to_str()
                    .map_err(|_| args::BadArg(a.to_string_lossy().into_owned()))
            })
            .collect::<Result<Vec<&str>, _>>()
            .and_then(args::parse);
        let args = match parsed {
            Ok(args) => args,
            Err(bad) => {
                return finish(
                    pamh,
                    Verdict {
                        pam: Pam::ServiceErr,
                        say: Some(Say::Error(bad.to_string())),
                    },
                    silent,
                );
            }
        };
        let user = match pamh.get_user(None) {
            Ok(user) => user,
            Err(e) => return e,
        };
        // An empty code asks whether there is anything to prompt for,
        // without counting: the unenrolled and a stopped agent are told so
        // before they type a code that cannot be checked.
        let probe = agent::verify_signin(&args.socket, &user, "", args.timeout);
        if let Some(v) = verdict::before_prompt(&probe, &args) {
            return finish(pamh, v, silent);
        }
        let typed = match pamh.get_item::<Conv>() {
            Ok(Some(conv)) => match conv.send(PAM_PROMPT_ECHO_OFF, PROMPT) {
                Ok(typed) => typed,
                Err(e) => return e,
            },
            Ok(None) => return PamResultCode::PAM_CONV_ERR,
            Err(e) => return e,
        };
        let code = typed
            .as_ref()
            .and_then(|t| t.as_str().ok())
            .unwrap_or_default();
        let answer = agent::verify_signin(&args.socket, &user, code, args.timeout);
        drop(typed);
        finish(pamh, verdict::after_prompt(&answer, &args), silent)
    }

    /// Nothing to set: the code is the whole credential.
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}

fn finish(pamh: &mut PamHandle, verdict: Verdict, silent: bool) -> PamResultCode {
    if let (Some(say), false) = (&verdict.say, silent)
        && let Ok(Some(conv)) = pamh.get_item::<Conv>()
    {
        let (style, text) = match say {
            Say::Info(text) => (PAM_TEXT_INFO, text),
            Say::Error(text) => (PAM_ERROR_MSG, text),
        };
        // A client that cannot show a message still gets the result.
        let _ = conv.send(style, text);
    }
    match verdict.pam {
        Pam::Success => PamResultCode::PAM_SUCCESS,
        Pam::AuthErr => PamResultCode::PAM_AUTH_ERR,
        Pam::MaxTries => PamResultCode::PAM_MAXTRIES,
        Pam::AuthinfoUnavail => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Pam::UserUnknown => PamResultCode::PAM_USER_UNKNOWN,
        Pam::Ignore => PamResultCode::PAM_IGNORE,
        Pam::ServiceErr => PamResultCode::PAM_SERVICE_ERR,
    }
}
