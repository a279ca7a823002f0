//! The Win32 calls behind Windows identity and ACLs: the one module of the
//! workspace that opts into `unsafe` (see the workspace's Cargo.toml). Every
//! function here is a safe wrapper: handles are owned and closed, buffers
//! sized by the OS, `LocalAlloc`ed results freed.
#![allow(unsafe_code)]

use std::ffi::{OsStr, c_void};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::ptr;

use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{
    ERROR_INSUFFICIENT_BUFFER, GENERIC_READ, GetLastError, HANDLE, HLOCAL, INVALID_HANDLE_VALUE,
    LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, ConvertStringSidToSidW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, GetTokenInformation,
    LookupAccountSidW, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    SECURITY_ATTRIBUTES, SID_AND_ATTRIBUTES, SID_NAME_USE, TOKEN_GROUPS, TOKEN_QUERY, TOKEN_USER,
    TokenGroups, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_OVERLAPPED, FILE_WRITE_ATTRIBUTES, FILE_WRITE_DATA, OPEN_EXISTING,
    SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, WaitNamedPipeW};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// A Win32 call that failed, with the OS's own error.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {source}")]
pub struct Win32Error {
    pub call: &'static str,
    #[source]
    pub source: io::Error,
}

impl Win32Error {
    fn last(call: &'static str) -> Self {
        Self {
            call,
            source: io::Error::last_os_error(),
        }
    }

    fn code(call: &'static str, code: u32) -> Self {
        Self {
            call,
            source: io::Error::from_raw_os_error(code as i32),
        }
    }
}

/// Who a token says it is: the user SID and each group SID with its
/// attributes (`SE_GROUP_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub user_sid: String,
    pub groups: Vec<(String, u32)>,
}

fn wide(text: &OsStr) -> Vec<u16> {
    text.encode_wide().chain(Some(0)).collect()
}

/// Memory the OS allocated with `LocalAlloc` for us to free.
struct Local(*mut c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from an API documented to return
            // LocalAlloc'ed memory, and is freed once, here.
            unsafe { LocalFree(self.0 as HLOCAL) };
        }
    }
}

/// A NUL-terminated UTF-16 string the OS wrote.
///
/// # Safety
/// `p` must point at a readable, NUL-terminated UTF-16 string.
unsafe fn from_wide_ptr(p: *const u16) -> String {
    let mut len = 0;
    // SAFETY: the caller promises a NUL terminator within the allocation.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units were just read from `p`.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

fn sid_to_string(sid: PSID) -> Result<String, Win32Error> {
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `sid` points into a token-information buffer that is alive for
    // this call; `text` receives a LocalAlloc'ed string.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(Win32Error::last("ConvertSidToStringSidW"));
    }
    let _free = Local(text.cast());
    // SAFETY: the call succeeded, so `text` is a NUL-terminated string.
    Ok(unsafe { from_wide_ptr(text) })
}

/// One `GetTokenInformation` class into an 8-aligned buffer of the size the
/// OS asks for.
fn token_information(token: &OwnedHandle, class: i32) -> Result<Vec<u64>, Win32Error> {
    let handle = token.as_raw_handle() as HANDLE;
    let mut needed = 0u32;
    // SAFETY: a size query: no buffer, `needed` receives the size.
    let ok = unsafe { GetTokenInformation(handle, class, ptr::null_mut(), 0, &mut needed) };
    // SAFETY: reads the calling thread's last error, nothing else.
    if ok == 0 && unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER {
        return Err(Win32Error::last("GetTokenInformation"));
    }
    let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
    let len = u32::try_from(buffer.len() * 8).unwrap_or(u32::MAX);
    // SAFETY: `buffer` is writable for `len` bytes and outlives the call.
    if unsafe { GetTokenInformation(handle, class, buffer.as_mut_ptr().cast(), len, &mut needed) }
        == 0
    {
        return Err(Win32Error::last("GetTokenInformation"));
    }
    Ok(buffer)
}

fn token_identity(token: &OwnedHandle) -> Result<TokenIdentity, Win32Error> {
    let user = token_information(token, TokenUser)?;
    // SAFETY: the buffer holds a TOKEN_USER (aligned to 8) whose SID points
    // inside the same buffer, which is alive while it is read.
    let user_sid = sid_to_string(unsafe { (*user.as_ptr().cast::<TOKEN_USER>()).User.Sid })?;
    let groups = token_information(token, TokenGroups)?;
    let header = groups.as_ptr().cast::<TOKEN_GROUPS>();
    // SAFETY: the buffer holds a TOKEN_GROUPS followed by `GroupCount`
    // entries (the struct declares one; the OS wrote them all).
    let entries: &[SID_AND_ATTRIBUTES] = unsafe {
        std::slice::from_raw_parts(
            ptr::addr_of!((*header).Groups).cast::<SID_AND_ATTRIBUTES>(),
            (*header).GroupCount as usize,
        )
    };
    let groups = entries
        .iter()
        .map(|g| Ok((sid_to_string(g.Sid)?, g.Attributes)))
        .collect::<Result<_, Win32Error>>()?;
    Ok(TokenIdentity { user_sid, groups })
}

fn process_token(process: HANDLE) -> Result<OwnedHandle, Win32Error> {
    let mut token: HANDLE = ptr::null_mut();
    // SAFETY: `process` is a live process handle; `token` receives a new one.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(Win32Error::last("OpenProcessToken"));
    }
    // SAFETY: a handle the call just opened, owned from here on.
    Ok(unsafe { OwnedHandle::from_raw_handle(token.cast()) })
}

/// The identity of this process's token.
pub fn current_identity() -> Result<TokenIdentity, Win32Error> {
    // SAFETY: a pseudo-handle that needs no closing.
    let token = process_token(unsafe { GetCurrentProcess() })?;
    token_identity(&token)
}

/// A pipe server's handle as a plain number, so that the lookup of its
/// client can run on a blocking thread (a raw handle is not `Send`).
#[derive(Debug, Clone, Copy)]
pub struct PipeHandle(usize);

impl PipeHandle {
    /// The caller keeps `pipe` open until every lookup through this handle
    /// has returned.
    pub fn of(pipe: &NamedPipeServer) -> Self {
        Self(pipe.as_raw_handle() as usize)
    }
}

/// The process id of the client connected to this pipe instance.
pub fn pipe_client_pid(pipe: PipeHandle) -> Result<u32, Win32Error> {
    let mut pid = 0u32;
    // SAFETY: `pipe` is a live server handle (the caller keeps the server
    // open, `PipeHandle::of`); `pid` receives the id.
    if unsafe { GetNamedPipeClientProcessId(pipe.0 as HANDLE, &mut pid) } == 0 {
        return Err(Win32Error::last("GetNamedPipeClientProcessId"));
    }
    Ok(pid)
}

/// Whether a named pipe of this name exists, without connecting to it:
/// opening the pipe (as `Path::exists` does) would take the server's one
/// listening instance from the client that comes next.
pub fn pipe_exists(path: &Path) -> bool {
    const ERROR_FILE_NOT_FOUND: u32 = 2;
    let name = wide(path.as_os_str());
    // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the
    // call; a 1 ms wait returns at once when no such pipe exists.
    if unsafe { WaitNamedPipeW(name.as_ptr(), 1) } != 0 {
        return true;
    }
    // SAFETY: reads this thread's last error, set by the call above.
    // Busy (ERROR_SEM_TIMEOUT) or refused: an agent owns the name.
    let error = unsafe { GetLastError() };
    error != ERROR_FILE_NOT_FOUND
}

/// The identity of the primary token of process `pid`.
pub fn process_identity(pid: u32) -> Result<TokenIdentity, Win32Error> {
    // SAFETY: opens a handle (or null) that is owned below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return Err(Win32Error::last("OpenProcess"));
    }
    // SAFETY: a handle the call just opened, owned from here on.
    let process = unsafe { OwnedHandle::from_raw_handle(process.cast()) };
    let token = process_token(process.as_raw_handle() as HANDLE)?;
    token_identity(&token)
}

/// The account name (without its domain) a SID belongs to.
pub fn account_name(sid: &str) -> Result<String, Win32Error> {
    let text = wide(OsStr::new(sid));
    let mut psid: PSID = ptr::null_mut();
    // SAFETY: `text` is NUL-terminated; `psid` receives a LocalAlloc'ed SID.
    if unsafe { ConvertStringSidToSidW(text.as_ptr(), &mut psid) } == 0 {
        return Err(Win32Error::last("ConvertStringSidToSidW"));
    }
    let _free = Local(psid);
    let (mut name_len, mut domain_len, mut kind) = (0u32, 0u32, 0 as SID_NAME_USE);
    // SAFETY: a size query: null buffers with zero lengths.
    unsafe {
        LookupAccountSidW(
            ptr::null(),
            psid,
            ptr::null_mut(),
            &mut name_len,
            ptr::null_mut(),
            &mut domain_len,
            &mut kind,
        )
    };
    if name_len == 0 {
        return Err(Win32Error::last("LookupAccountSidW"));
    }
    let mut name = vec![0u16; name_len as usize];
    let mut domain = vec![0u16; domain_len.max(1) as usize];
    domain_len = u32::try_from(domain.len()).unwrap_or(u32::MAX);
    // SAFETY: both buffers are writable for the lengths passed.
    if unsafe {
        LookupAccountSidW(
            ptr::null(),
            psid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    } == 0
    {
        return Err(Win32Error::last("LookupAccountSidW"));
    }
    // On success `name_len` is the length without the NUL.
    Ok(String::from_utf16_lossy(&name[..name_len as usize]))
}

/// A self-relative security descriptor built from SDDL, freed on drop.
pub struct SecurityDescriptor {
    sd: Local,
}

// SAFETY: the descriptor is immutable after construction and only ever
// passed to the OS by pointer for reading; LocalFree may run on any thread.
unsafe impl Send for SecurityDescriptor {}
// SAFETY: as above: shared references only read it.
unsafe impl Sync for SecurityDescriptor {}

impl SecurityDescriptor {
    pub fn from_sddl(sddl: &str) -> Result<Self, Win32Error> {
        let text = wide(OsStr::new(sddl));
        let mut sd: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; `sd` receives a LocalAlloc'ed
        // descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(Win32Error::last(
                "ConvertStringSecurityDescriptorToSecurityDescriptorW",
            ));
        }
        Ok(Self { sd: Local(sd) })
    }

    fn dacl(&self) -> Result<*mut ACL, Win32Error> {
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = ptr::null_mut();
        // SAFETY: `self.sd` is a valid descriptor; the DACL pointer points
        // into it and is used only while `self` lives.
        if unsafe { GetSecurityDescriptorDacl(self.sd.0, &mut present, &mut dacl, &mut defaulted) }
            == 0
        {
            return Err(Win32Error::last("GetSecurityDescriptorDacl"));
        }
        if present == 0 || dacl.is_null() {
            return Err(Win32Error {
                call: "GetSecurityDescriptorDacl",
                source: io::Error::other("the descriptor has no DACL"),
            });
        }
        Ok(dacl)
    }
}

/// Creates one instance of a named pipe server with this security
/// descriptor on it.
pub fn create_pipe(
    options: &ServerOptions,
    path: &Path,
    sd: &SecurityDescriptor,
) -> io::Result<NamedPipeServer> {
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: u32::try_from(size_of::<SECURITY_ATTRIBUTES>()).unwrap_or(u32::MAX),
        lpSecurityDescriptor: sd.sd.0,
        bInheritHandle: 0,
    };
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES whose descriptor
    // outlives the call (the pipe keeps its own copy of it).
    unsafe {
        options.create_with_security_attributes_raw(
            path.as_os_str(),
            ptr::addr_of_mut!(attributes).cast(),
        )
    }
}

/// What a client opens the agent's pipe with: read, write data and
/// attributes. Not GENERIC_WRITE: that maps to FILE_GENERIC_WRITE, whose
/// FILE_APPEND_DATA is the pipe's FILE_CREATE_PIPE_INSTANCE, which the
/// pipe's DACL rightly does not grant clients (`winsec::pipe_sddl`).
pub const PIPE_CLIENT_ACCESS: u32 = GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES;

/// Opens the client end of a named pipe with [`PIPE_CLIENT_ACCESS`],
/// overlapped (for tokio), and letting the server identify the user but not
/// impersonate them (a rogue server learns nothing it could act with).
pub fn open_pipe_client(path: &Path) -> io::Result<NamedPipeClient> {
    let name = wide(path.as_os_str());
    // SAFETY: `name` is NUL-terminated; no security attributes or template.
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            PIPE_CLIENT_ACCESS,
            0,
            ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
            ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a handle the call just opened, overlapped as tokio requires
    // and owned by nothing else: tokio takes it over (and closes it, also
    // when registering it with the runtime fails).
    unsafe { NamedPipeClient::from_raw_handle(handle.cast()) }
}

/// Replaces the DACL of a file or directory with the one in `sddl`,
/// protected from inheritance. Inheritable ACEs propagate to children that
/// do not protect their own.
pub fn set_dacl(path: &Path, sddl: &str) -> Result<(), Win32Error> {
    let sd = SecurityDescriptor::from_sddl(sddl)?;
    let dacl = sd.dacl()?;
    let name = wide(path.as_os_str());
    // SAFETY: `name` is NUL-terminated; `dacl` points into `sd`, alive for
    // the call; owner, group and SACL are left as they are (null).
    let code = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            dacl,
            ptr::null(),
        )
    };
    if code != 0 {
        return Err(Win32Error::code("SetNamedSecurityInfoW", code));
    }
    Ok(())
}

/// The DACL of a file or directory, as SDDL (`D:P(A;OICI;FA;;;SY)…`).
pub fn read_dacl(path: &Path) -> Result<String, Win32Error> {
    let name = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = ptr::null_mut();
    let mut dacl: *mut ACL = ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; `sd` receives a LocalAlloc'ed
    // descriptor that `dacl` points into; the other outputs are not asked.
    let code = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut dacl,
            ptr::null_mut(),
            &mut sd,
        )
    };
    if code != 0 {
        return Err(Win32Error::code("GetNamedSecurityInfoW", code));
    }
    let sd = Local(sd);
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `sd.0` is the descriptor just read; `text` receives a
    // LocalAlloc'ed string.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd.0,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(Win32Error::last(
            "ConvertSecurityDescriptorToStringSecurityDescriptorW",
        ));
    }
    let _free = Local(text.cast());
    // SAFETY: the call succeeded, so `text` is a NUL-terminated string.
    Ok(unsafe { from_wide_ptr(text) })
}

/// Whether this process runs under Wine (whose ntdll exports
/// `wine_get_version`), where file DACLs are mapped to Unix mode bits
/// rather than kept, so tests know what they can expect to read back.
pub fn running_under_wine() -> bool {
    let ntdll = wide(OsStr::new("ntdll.dll"));
    // SAFETY: `ntdll` is NUL-terminated; ntdll is loaded in every process
    // and the handle needs no release.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return false;
    }
    // SAFETY: `module` is a loaded module and the name is NUL-terminated;
    // the address is only compared, never called.
    unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// An open registry key, closed on drop.
struct RegKey(windows_sys::Win32::System::Registry::HKEY);

impl Drop for RegKey {
    fn drop(&mut self) {
        // SAFETY: the handle came from RegOpenKeyExW and is closed once.
        unsafe { windows_sys::Win32::System::Registry::RegCloseKey(self.0) };
    }
}

/// The values `names` under `HKLM\subkey` (the 64-bit view, where Group
/// Policy writes), for `crate::mdm`: `Ok(None)` when the key does not exist,
/// a missing value left out.
pub fn read_policy_values(
    subkey: &str,
    names: &[&str],
) -> io::Result<Option<Vec<(String, crate::mdm::RegValue)>>> {
    use crate::mdm::RegValue;
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_64KEY, REG_DWORD, REG_EXPAND_SZ, REG_MULTI_SZ,
        REG_SZ, RegOpenKeyExW, RegQueryValueExW,
    };

    let path = wide(OsStr::new(subkey));
    let mut handle = ptr::null_mut();
    // SAFETY: `path` is NUL-terminated UTF-16 and outlives the call;
    // `handle` is written only on success.
    let status = unsafe {
        RegOpenKeyExW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            0,
            KEY_READ | KEY_WOW64_64KEY,
            &mut handle,
        )
    };
    if status == ERROR_FILE_NOT_FOUND {
        return Ok(None);
    }
    if status != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    let key = RegKey(handle);
    let text = |bytes: &[u8]| -> String {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let mut values = Vec::new();
    for name in names {
        let value_name = wide(OsStr::new(name));
        let mut kind = 0u32;
        let mut len = 0u32;
        // SAFETY: a size query: no data pointer, `kind` and `len` are ours.
        let status = unsafe {
            RegQueryValueExW(
                key.0,
                value_name.as_ptr(),
                ptr::null(),
                &mut kind,
                ptr::null_mut(),
                &mut len,
            )
        };
        if status == ERROR_FILE_NOT_FOUND {
            continue;
        }
        if status != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(status as i32));
        }
        let mut buf = vec![0u8; len as usize];
        // SAFETY: `buf` holds `len` bytes, the size the OS asked for.
        let status = unsafe {
            RegQueryValueExW(
                key.0,
                value_name.as_ptr(),
                ptr::null(),
                &mut kind,
                buf.as_mut_ptr(),
                &mut len,
            )
        };
        if status != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(status as i32));
        }
        buf.truncate(len as usize);
        let value = match kind {
            REG_SZ | REG_EXPAND_SZ => {
                RegValue::Sz(text(&buf).split('\0').next().unwrap_or_default().to_owned())
            }
            REG_DWORD if buf.len() >= 4 => {
                RegValue::Dword(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
            }
            REG_MULTI_SZ => RegValue::MultiSz(
                text(&buf)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            other => RegValue::Other(other),
        };
        values.push(((*name).to_owned(), value));
    }
    Ok(Some(values))
}
