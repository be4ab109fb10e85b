"""Comparing results: Dice, HD95, label statistics and confusion maps (segmentations); PSNR and SSIM (images)."""
